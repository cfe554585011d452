"""Tests for datasets/demo.py: the Decoy-MNIST style shortcut benchmark from sklearn digits."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from datasets import (
    GREEN,
    RED,
    DatasetError,
    DemoInfo,
    ImageFolderData,
    default_demo_dir,
    ensure_demo_data,
    make_demo_data,
    read_mask_meta,
)
from datasets.demo import CANVAS, SWATCH, render_digit
from datasets.masks import read_mask_array

CORNERS = [(0, 0), (0, CANVAS - SWATCH), (CANVAS - SWATCH, 0), (CANVAS - SWATCH, CANVAS - SWATCH)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_data(tmp_path_factory.mktemp("demo") / "out", seed=0)


def _tree_hash(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _images(info, split):
    """(label, image uint8 32x32, truth mask int8 32x32) for every image of `split`."""
    for path in sorted((info.root / split).rglob("*.png")):
        relpath = path.relative_to(info.root / split)
        yield (int(relpath.parts[0]), np.asarray(Image.open(path)), read_mask_array(info.truth_dir(split) / relpath))


def _swatch(mask):
    """(row, col) of the red block; asserts it is exactly one SWATCH x SWATCH corner block."""
    red = np.argwhere(mask == RED)
    assert len(red) == SWATCH * SWATCH
    origin = tuple(red.min(axis=0).tolist())
    assert origin in CORNERS and tuple(red.max(axis=0).tolist()) == (origin[0] + SWATCH - 1, origin[1] + SWATCH - 1)
    return origin


def test_layout_counts_and_description(demo):
    assert isinstance(demo, DemoInfo) and demo.seed == 0
    assert sum(demo.counts.values()) == 1797
    assert demo.counts == {"train": 1079, "val": 359, "test": 359}  # about 60/20/20
    for split in ("train", "val", "test"):
        assert sorted(p.name for p in (demo.root / split).iterdir()) == list(demo.classes)
        on_disk = sum(1 for _ in (demo.root / split).rglob("*.png"))
        assert on_disk == demo.counts[split]
        assert sum(1 for _ in demo.truth_dir(split).rglob("*.png")) == on_disk
    record = json.loads((demo.root / "demo.json").read_text())
    assert record["seed"] == 0 and record["counts"] == demo.counts
    for split in ("train", "val", "test"):  # stratified: each class split about 60/20/20
        per_class = record["class_counts"][split]
        share = np.array(list(per_class.values())) / np.array(
            [sum(record["class_counts"][s][d] for s in record["counts"]) for d in per_class]
        )
        assert np.all(np.abs(share - {"train": 0.6, "val": 0.2, "test": 0.2}[split]) < 0.02)
    assert "255 - 25 * digit" in (demo.root / "README.txt").read_text()
    assert DemoInfo.from_dir(demo.root) == demo


def test_images_are_grayscale_32x32(demo):
    path = next((demo.root / "train" / "3").iterdir())
    image = Image.open(path)
    assert image.mode == "L" and image.size == (CANVAS, CANVAS)
    assert read_mask_meta(demo.truth_dir("train") / "3" / path.name) == {"source": "demo-truth"}


@pytest.mark.parametrize("split", ["train", "val"])
def test_the_swatch_encodes_the_label_in_train_and_val(demo, split):
    for label, image, mask in _images(demo, split):
        row, col = _swatch(mask)
        block = image[row : row + SWATCH, col : col + SWATCH]
        assert (block == 255 - 25 * label).all()


def test_the_swatch_is_random_in_test(demo):
    matches, shades = 0, set()
    for label, image, mask in _images(demo, "test"):
        row, col = _swatch(mask)
        block = image[row : row + SWATCH, col : col + SWATCH]
        shade = int(block[0, 0])
        assert (block == shade).all() and (255 - shade) % 25 == 0
        shades.add(shade)
        matches += shade == 255 - 25 * label
    assert len(shades) == 10
    assert matches / demo.counts["test"] < 0.2  # about 1 in 10 by chance


def test_truth_masks_green_covers_the_digit_and_never_the_swatch(demo):
    corners_used = set()
    for _label, _image, mask in _images(demo, "train"):
        corners_used.add(_swatch(mask))
        green = mask == GREEN
        assert green.any()
        assert not green[:7].any() and not green[-7:].any()  # the digit box, grown by 1 pixel
        assert not green[:, :7].any() and not green[:, -7:].any()
    assert corners_used == set(CORNERS)


def test_render_digit_by_hand():
    digit = np.zeros((8, 8))
    digit[3:5, 3:5] = 16  # a 2x2 blob of full ink in the middle
    image, mask = render_digit(digit, corner=3, shade=30)
    assert (image[26:, 26:] == 30).all() and (mask[26:, 26:] == RED).all()
    assert image[:6].max() == 0 and image[16, 16] == 153  # full ink at 60 % contrast
    assert (mask == RED).sum() == 36 and mask[16, 16] == GREEN and mask[4, 4] == 0
    noisy, same_mask = render_digit(digit, corner=3, shade=30, noise=np.full((32, 32), 10.0))
    assert noisy[0, 0] == 10 and noisy[16, 16] == 163 and (noisy[26:, 26:] == 30).all()  # swatch stays clean
    assert (same_mask == mask).all()


def test_the_same_seed_gives_byte_identical_files(demo, tmp_path):
    # ensure_demo_data builds with seed 0 as well, so it doubles as the second run.
    made = ensure_demo_data(tmp_path / "cache" / "demo-v2")
    assert made == tmp_path / "cache" / "demo-v2"
    assert _tree_hash(made) == _tree_hash(demo.root)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["demo-v2"]  # no temp folder left
    stamp = (made / "demo.json").stat().st_mtime_ns
    assert ensure_demo_data(made) == made  # reused, not rebuilt
    assert (made / "demo.json").stat().st_mtime_ns == stamp


def test_another_seed_gives_another_split():
    from sklearn.datasets import load_digits

    from datasets.demo import _split_assignment

    targets = load_digits().target
    first = _split_assignment(targets, np.random.default_rng(0))
    assert (first == _split_assignment(targets, np.random.default_rng(0))).all()
    assert (first != _split_assignment(targets, np.random.default_rng(1))).any()


def test_refuses_to_write_into_a_folder_with_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an empty folder"):
        make_demo_data(tmp_path)
    with pytest.raises(DatasetError, match="holds no demo data"):
        ensure_demo_data(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_default_demo_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_demo_dir() == tmp_path / "saliency-steering" / "demo-v2"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_demo_dir() == tmp_path / "home" / ".cache" / "saliency-steering" / "demo-v2"


def test_the_demo_loads_as_an_image_folder_with_its_truth_masks(demo):
    data = ImageFolderData(demo.val_dir, 32, (0.5,) * 3, (0.5,) * 3, masks_dir=demo.truth_dir("val"))
    assert data.classes == [str(d) for d in range(10)] and len(data) == demo.counts["val"]
    assert data.skipped == []
    item = data[0]
    assert item.has_mask
    truth = read_mask_array(demo.truth_dir("val") / data.relpaths[0])
    assert item.mask.numpy().tolist() == truth.tolist()


def test_moving_and_shape_shortcuts_move_and_never_touch_the_digit(tmp_path):
    import json

    import numpy as np

    from datasets.demo import CANVAS, DIGIT_OFFSET, DIGIT_SIDE, GLYPHS, make_demo_data
    from datasets.masks import RED, read_mask_array

    box = np.zeros((CANVAS, CANVAS), bool)
    box[DIGIT_OFFSET : DIGIT_OFFSET + DIGIT_SIDE, DIGIT_OFFSET : DIGIT_OFFSET + DIGIT_SIDE] = True
    for kind, vary in (("moving", True), ("shape", False)):
        info = make_demo_data(tmp_path / kind, seed=0, shortcut=kind, vary_size=vary)
        assert json.loads((info.root / "demo.json").read_text())["shortcut"] == kind
        masks = sorted((info.root / "truth" / "train").rglob("*.png"))[:200]
        origins, sizes = set(), set()
        for path in masks:
            red = read_mask_array(path) == RED
            assert red.any() and not (red & box).any()  # in the border, never over the digit
            rows, cols = np.nonzero(red)
            origins.add((rows.min(), cols.min()))
            sizes.add(int(rows.max() - rows.min() + 1))
            if kind == "shape":  # the glyph of the image's own digit in train/
                label = int(path.parent.name)
                glyph = red[rows.min() : rows.min() + 7, cols.min() : cols.min() + 7]
                padded = np.zeros((7, 7), bool)
                padded[: glyph.shape[0], : glyph.shape[1]] = glyph
                assert (padded == GLYPHS[label]).all()
        assert len(origins) > 100  # anywhere, not four corners
        if kind == "moving":
            assert sizes == {4, 5, 6, 7, 8}


def test_unknown_shortcut_is_refused(tmp_path):
    import pytest

    from datasets import DatasetError, make_demo_data

    with pytest.raises(DatasetError, match="Unknown demo shortcut"):
        make_demo_data(tmp_path / "x", shortcut="diagonal")
