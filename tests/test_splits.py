"""Tests for datasets/splits.py: separate validation folder or seeded stratified split."""

import numpy as np
import pytest
from PIL import Image

from datasets import DatasetError, DataSplits, load_splits
from datasets.splits import stratified_split

NORM = dict(input_size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _folder(root, classes):
    for c, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", (6, 6), (20 * c, i, 0)).save(root / name / f"{i:02d}.png")
    return root


def test_stratified_split_counts_and_disjointness():
    targets = [0] * 10 + [1] * 5 + [2] * 2
    train, val = stratified_split(targets, ["a", "b", "c"], 0.2, seed=0)
    assert sorted(train + val) == list(range(17)) and not set(train) & set(val)
    val_labels = np.bincount(np.asarray(targets)[val], minlength=3).tolist()
    assert val_labels == [2, 1, 1]  # round(10*0.2), round(5*0.2), at least 1 of the 2
    assert train == sorted(train) and val == sorted(val)


def test_stratified_split_is_seeded():
    targets = [0] * 10 + [1] * 10
    first = stratified_split(targets, ["a", "b"], 0.3, seed=5)
    assert stratified_split(targets, ["a", "b"], 0.3, seed=5) == first
    others = [stratified_split(targets, ["a", "b"], 0.3, seed=s) for s in range(6, 10)]
    assert any(other != first for other in others)


def test_a_class_with_one_image_cannot_be_split():
    with pytest.raises(DatasetError, match=r"at least 2 images.*b \(1\)"):
        stratified_split([0, 0, 1], ["a", "b"], 0.5, seed=0)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_the_fraction_must_be_inside_zero_one(fraction):
    with pytest.raises(DatasetError, match="between 0 and 1"):
        stratified_split([0, 0, 1, 1], ["a", "b"], fraction, seed=0)


def test_load_splits_without_a_validation_folder(tmp_path):
    _folder(tmp_path / "train", {"cat": 10, "dog": 5})
    (tmp_path / "train" / "dog" / "bad.png").write_bytes(b"")
    splits = load_splits(tmp_path / "train", masks_dir=tmp_path / "masks", val_fraction=0.2, seed=3, **NORM)
    assert isinstance(splits, DataSplits)
    train, val = splits
    assert val.class_counts() == {"cat": 2, "dog": 1}
    assert train.class_counts() == {"cat": 8, "dog": 4}
    assert not set(train.relpaths) & set(val.relpaths)
    assert train.masks is val.masks and train.masks is not None
    assert train.skipped == [("dog/bad.png", "empty file (0 bytes)")] and val.skipped == []
    again = load_splits(tmp_path / "train", val_fraction=0.2, seed=3, **NORM)
    assert again.val.relpaths == val.relpaths and again.train.relpaths == train.relpaths


def test_load_splits_needs_two_images_per_class(tmp_path):
    _folder(tmp_path / "train", {"cat": 3, "dog": 1})
    with pytest.raises(DatasetError, match=r"dog \(1\).*separate validation folder"):
        load_splits(tmp_path / "train", **NORM)


def test_load_splits_with_a_validation_folder(tmp_path):
    _folder(tmp_path / "train", {"cat": 2, "dog": 2})
    _folder(tmp_path / "val", {"cat": 1, "dog": 3})
    train, val = load_splits(tmp_path / "train", tmp_path / "val", masks_dir=tmp_path / "masks", **NORM)
    assert (len(train), len(val)) == (4, 4)
    assert val.classes == train.classes and val.class_counts() == {"cat": 1, "dog": 3}
    assert train.masks is not None and val.masks is None


def test_the_validation_folder_must_have_the_training_classes(tmp_path):
    _folder(tmp_path / "train", {"cat": 2, "dog": 2, "eel": 2})
    _folder(tmp_path / "val", {"cat": 1, "dog": 1, "fox": 1})
    with pytest.raises(DatasetError, match=r"validation folder .*missing eel; unexpected fox"):
        load_splits(tmp_path / "train", tmp_path / "val", **NORM)


def test_a_missing_validation_folder_is_named(tmp_path):
    _folder(tmp_path / "train", {"cat": 2, "dog": 2})
    with pytest.raises(DatasetError, match=r"validation folder .*nope does not exist"):
        load_splits(tmp_path / "train", tmp_path / "nope", **NORM)
