"""The shortcut zoo: random draws of a family of shortcut data sets (datasets/zoo.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from datasets import GREEN, RED
from datasets.errors import DatasetError
from datasets.masks import read_mask_array
from datasets.zoo import KINDS, ZooDraw, _Renderer, draw_zoo, make_zoo_data


def test_draws_cover_every_kind_and_vary_the_rest():
    draws = [draw_zoo(seed) for seed in range(12)]
    assert [d.kind for d in draws[:6]] == list(KINDS)  # stratified: any 6 consecutive seeds cover every kind
    assert len({d.placement for d in draws}) == 3 and len({d.size for d in draws}) >= 2
    assert len({d.opacity for d in draws}) >= 8 and all(0.8 <= d.share <= 1.0 for d in draws)
    assert draw_zoo(3) == draw_zoo(3)  # a seed is one data set
    assert all(d.placement == "fixed" for d in draws if d.kind == "frame")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("placement", ["fixed", "moving", "tied"])
def test_every_kind_is_drawn_where_its_mask_says_and_never_over_the_object(kind, placement):
    draw = ZooDraw(0, 48, kind, placement, 0.2, 1.0, 1.0, 0.6, 20.0)
    renderer = _Renderer(draw, np.random.default_rng(0))
    digit8 = np.zeros((8, 8))
    digit8[2:6, 3:5] = 16  # a bar of full ink
    image, clean, mask = renderer.render(digit8, 3)
    red, green = mask == RED, mask == GREEN
    assert red.any() and green.any() and not (red & green).any()
    changed = np.any(image != clean, axis=2)
    assert changed.any() and not (changed & ~red).any()  # the shortcut only where the mask is red
    assert np.array_equal(renderer.render(digit8, None)[2] == RED, np.zeros_like(red))  # no shortcut: no red


def test_a_zoo_draw_is_written_as_a_demo_with_an_oracle_copy_and_a_random_test_shortcut(tmp_path):
    draw = ZooDraw(5, 32, "patch", "moving", 0.2, 0.9, 0.9, 0.5, 25.0)
    root = make_zoo_data(tmp_path / "zoo", draw)
    record = json.loads((root / "demo.json").read_text())
    assert record["zoo"]["kind"] == "patch" and record["counts"]["train"] > 900
    assert 0.85 < record["carrying_shortcut"]["train"] / record["counts"]["train"] < 0.95
    assert record["carrying_shortcut"]["test"] == record["counts"]["test"]
    relpath = sorted((root / "train").rglob("*.png"))[0].relative_to(root / "train")
    image = np.asarray(Image.open(root / "train" / relpath))
    assert image.shape == (32, 32, 3)
    oracle = np.asarray(Image.open(root / "oracle" / "train" / relpath))
    truth = read_mask_array(root / "truth" / "train" / relpath)
    assert np.array_equal(image[truth != RED], oracle[truth != RED])  # the oracle differs only under red
    # In train the patch colour tells the class; in test it is random: some test patches disagree.
    test_colours = {}
    for path in sorted((root / "test").rglob("*.png"))[:200]:
        rel = path.relative_to(root / "test")
        red = read_mask_array(root / "truth" / "test" / rel) == RED
        colour = tuple(np.asarray(Image.open(path))[red].mean(axis=0).round(-1))
        test_colours.setdefault(rel.parts[0], set()).add(colour)
    assert max(len(colours) for colours in test_colours.values()) > 3
    with pytest.raises(DatasetError, match="not an empty folder"):
        make_zoo_data(root, draw)


def test_the_same_draw_gives_the_same_files(tmp_path):
    draw = ZooDraw(2, 32, "text", "tied", 0.2, 0.8, 1.0, 0.5, 25.0)
    first, second = make_zoo_data(tmp_path / "a", draw), make_zoo_data(tmp_path / "b", draw)
    for path in sorted(first.rglob("*.png"))[:50]:
        assert (second / path.relative_to(first)).read_bytes() == path.read_bytes()


def test_bad_draw_parameters_are_refused():
    with pytest.raises(DatasetError, match="kind"):
        ZooDraw(0, 32, "sticker", "fixed", 0.2, 1.0, 1.0, 0.5, 20.0)
    with pytest.raises(DatasetError, match="side"):
        ZooDraw(0, 8, "patch", "fixed", 0.2, 1.0, 1.0, 0.5, 20.0)
