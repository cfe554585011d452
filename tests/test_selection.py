"""Tests for app/explain/selection.py: every strategy, and "unreasonable explanations first" exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from app.errors import UserError
from app.explain.selection import SELECTION_STRATEGIES, diversified_order, select_images
from datasets import ImageFolderData, MaskStore

SIDE = 16


class InkModel(nn.Module):
    """logit_k = sum_j w_kj * x_j^2 with all w = 1 except where noted: the input gradient of any
    class is 2 x, so (with mean 0, std 1) an image's saliency is exactly where it has ink."""

    def __init__(self, num_classes: int = 2, bias: tuple = ()):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_classes, 3 * SIDE * SIDE))
        self.bias = nn.Parameter(torch.tensor(bias or [0.0] * num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.pow(2).flatten(1) @ self.weight.T + self.bias


def _save(root, relpath, gray):
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(path)


def _image(blob_cols=None, corner=0, corner_side=2):
    """16 x 16 gray: a 4 x 4 object at rows 6-9 and the given columns, a bottom-right patch."""
    gray = np.zeros((SIDE, SIDE), np.uint8)
    if blob_cols is not None:
        gray[6:10, blob_cols : blob_cols + 4] = 255
    if corner:
        gray[SIDE - corner_side :, SIDE - corner_side :] = corner
    return gray


@pytest.fixture
def shortcut_folder(tmp_path):
    """Class a's object on the left, class b's on the right; every image has a faint 2 x 2
    bottom-right patch (salient in both classes: the shortcut); a/planted is nearly all patch."""
    root = tmp_path / "data"
    for i in range(3):
        _save(root, f"a/{i}.png", _image(blob_cols=1, corner=128))
        _save(root, f"b/{i}.png", _image(blob_cols=11, corner=128))
    _save(root, "a/planted.png", _image(blob_cols=None, corner=255, corner_side=4))
    return root


def _data(root, masks=None):
    return ImageFolderData(root, SIDE, (0, 0, 0), (1, 1, 1), masks_dir=masks)


def test_strategies_in_order():
    assert SELECTION_STRATEGIES == ("random", "entropy", "misclassified", "unreasonable")


def test_unreasonable_ranks_the_planted_shortcut_first_with_its_share(shortcut_folder):
    data = _data(shortcut_folder)
    choices = select_images(InkModel(), data, 3, "unreasonable")
    assert choices[0].relpath == "a/planted.png"
    # planted: all its saliency on a 4 x 4 patch; the best 3 x 3 window (0.2 of 16 px) holds 9/16
    # of it, an even spread 9/256: focused = (9/16 - 9/256) / (1 - 9/256) = 0.547.
    focused = (9 / 16 - 9 / 256) / (1 - 9 / 256)
    assert choices[0].reason == f"saliency focused on one small spot: {100 * focused:.0f} %"
    assert choices[0].score == pytest.approx(focused, abs=1e-6)
    # The common map: the 2 x 2 patch (min over classes; the objects differ by class) -> w = 1
    # there, 0 elsewhere. planted: ink 255 on a 4 x 4 patch, 4 of its 16 pixels inside -> 25 %.
    from app.explain.reasonability import build_priors, pool_saliency, saliency_distribution, unreasonable_scores

    indices = list(range(len(data)))
    saliency, targets, _ = pool_saliency(InkModel(), data, indices, torch.device("cpu"))
    distributions = saliency_distribution(saliency)
    scores = unreasonable_scores(distributions, targets, build_priors(data, distributions, targets))
    planted = data.index_of("a/planted.png")
    assert float(scores.components["common"][planted]) == pytest.approx(0.25, abs=1e-6)
    # Others: saliency 2|x| is proportional to the ink: 4 patch pixels of 128 vs 16 of 255.
    patch, blob = 4 * 128 / 255, 16 * 1.0
    others = [i for i in indices if i != planted]
    assert torch.allclose(scores.components["common"][others], torch.full((6,), patch / (patch + blob)))


def test_unreasonable_finds_the_painted_red_content_where_it_moved(tmp_path):
    # The painted thing: a white 4 x 4 square, top-left in the painted image. b/moved has it in
    # the bottom-right; the others hold a grey horizontal bar instead (ink of another look).
    root = tmp_path / "data"
    square_tl = np.zeros((SIDE, SIDE), np.uint8)
    square_tl[0:4, 0:4] = 255
    square_br = np.zeros((SIDE, SIDE), np.uint8)
    square_br[11:15, 10:14] = 255
    bar = np.zeros((SIDE, SIDE), np.uint8)
    bar[7:9, 2:14] = 120
    _save(root, "a/painted.png", square_tl)
    _save(root, "a/bar.png", bar)
    _save(root, "b/moved.png", square_br)
    _save(root, "b/bar.png", bar)
    masks = MaskStore(tmp_path / "masks")
    red = np.zeros((SIDE, SIDE), np.int8)
    red[0:4, 0:4] = 1
    masks.save("a/painted.png", red)
    data = _data(root, tmp_path / "masks")
    choices = select_images(InkModel(), data, 3, "unreasonable", exclude=["a/painted.png"])
    assert choices[0].relpath == "b/moved.png"
    assert choices[0].reason == "saliency on what was painted red, found in this image: 100 %"
    assert "a/painted.png" not in [c.relpath for c in choices]


def test_unreasonable_off_the_object_from_green_of_the_same_class(tmp_path):
    root = tmp_path / "data"
    on, off = np.zeros((SIDE, SIDE), np.uint8), np.zeros((SIDE, SIDE), np.uint8)
    on[6:10, 6:10] = 255
    off[0:4, 12:16] = 255
    _save(root, "a/painted.png", on)
    _save(root, "a/on.png", on)
    _save(root, "a/off.png", off)
    _save(root, "b/x.png", on)
    masks = MaskStore(tmp_path / "masks")
    green = np.zeros((SIDE, SIDE), np.int8)
    green[5:11, 5:11] = -1
    masks.save("a/painted.png", green)
    choices = select_images(InkModel(), _data(root, tmp_path / "masks"), 3, "unreasonable", exclude=["a/painted.png"])
    assert choices[0].relpath == "a/off.png"
    assert choices[0].reason == "saliency off the object: 100 %"
    # the images on the object score nothing off it (only their focus on the small object counts)
    assert all(not c.reason.startswith("saliency off the object") for c in choices[1:])
    assert all(c.score < choices[0].score for c in choices[1:])


def test_diversified_order_pushes_down_lookalikes():
    maps = torch.zeros(3, 2, 2)
    maps[0, 0, 0] = maps[1, 0, 0] = 1.0  # 0 and 1 look at the same pixel
    maps[2, 1, 1] = 1.0
    order, adjusted = diversified_order(torch.tensor([1.0, 0.9, 0.8]), maps, picks=3, diversity=0.5)
    assert order == [0, 2, 1]
    assert torch.allclose(adjusted, torch.tensor([1.0, 0.8, 0.45]))
    order, _ = diversified_order(torch.tensor([1.0, 0.9, 0.8]), maps, picks=3, diversity=0.0)
    assert order == [0, 1, 2]


@pytest.mark.parametrize("strategy", SELECTION_STRATEGIES)
def test_every_strategy_returns_k_distinct_unexcluded_images(shortcut_folder, strategy):
    data = _data(shortcut_folder)
    choices = select_images(InkModel(), data, 4, strategy, exclude=["a/0.png"], seed=3)
    relpaths = [c.relpath for c in choices]
    assert len(relpaths) == len(set(relpaths)) == 4
    assert "a/0.png" not in relpaths
    assert all(data.relpaths[c.index] == c.relpath for c in choices)
    assert all(c.reason for c in choices)


def test_misclassified_puts_mistakes_first(shortcut_folder):
    data = _data(shortcut_folder)
    model = InkModel(bias=(0.0, 1.0))  # equal ink terms: class b always wins
    choices = select_images(model, data, 7, "misclassified", pool_size=None)
    wrong = {r for r in data.relpaths if r.startswith("a/")}
    assert {c.relpath for c in choices[:4]} == wrong
    assert choices[0].reason.startswith("misclassified as b")


def test_random_is_seeded(shortcut_folder):
    data = _data(shortcut_folder)
    first = [c.relpath for c in select_images(InkModel(), data, 5, "random", seed=7)]
    again = [c.relpath for c in select_images(InkModel(), data, 5, "random", seed=7)]
    assert first == again


def test_bad_arguments(shortcut_folder):
    data = _data(shortcut_folder)
    with pytest.raises(UserError, match="unknown selection strategy"):
        select_images(InkModel(), data, 2, "loudest")
    with pytest.raises(UserError, match=">= 1"):
        select_images(InkModel(), data, 0, "random")
    assert select_images(InkModel(), data, 2, "unreasonable", exclude=data.relpaths) == []


def test_picks_are_spread_over_the_classes():
    from app.explain.selection import Choice, spread_over_classes

    targets = [0, 0, 0, 0, 1, 1, 2, 2]
    ranked = [Choice(i, f"{targets[i]}/{i}.png", float(10 - i), "") for i in range(8)]
    picked = spread_over_classes(ranked, targets, 3)
    assert [c.index for c in picked] == [0, 4, 6]  # the best of each class, in ranked order
    # More picks than classes allow: at most ceil(k / classes) per class, then topped up.
    assert [c.index for c in spread_over_classes(ranked, targets, 6)] == [0, 1, 4, 5, 6, 7]
    assert [c.index for c in spread_over_classes(ranked, [0] * 8, 3)] == [0, 1, 2]


def test_unreasonable_before_any_paint_picks_the_images_a_conv_model_decides_by_a_patch(tmp_path):
    """A conv model (Grad-CAM exists): the score is the drop when the top of the Grad-CAM map is
    hidden; the position heuristics step aside. The patch images (8 of 48, class b) come first."""
    from app.explain.reasonability import decisive_drops
    from tests.shortcut_images import make_shortcut_data, shortcut_model

    data, carrying = make_shortcut_data(tmp_path)
    model = shortcut_model()
    choices = select_images(model, data, 4, "unreasonable")
    # spread over the classes: two of class b (both carry the patch), two of class a (none does)
    assert choices[0].relpath in carrying
    assert [c.relpath in carrying for c in choices if c.relpath.startswith("b/")] == [True, True]
    assert choices[0].reason.startswith("hiding the top 5 % of the Grad-CAM map drops the class by")
    drops = decisive_drops(model, data, list(range(len(data))), torch.device("cpu"))
    carries = torch.tensor([r in carrying for r in data.relpaths])
    assert float(drops[carries].min()) > float(drops[~carries].max())
    assert decisive_drops(InkModel(), data, [0, 1], torch.device("cpu")) is None  # no convolution: no Grad-CAM
