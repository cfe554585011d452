"""Tests for datasets/image_folder.py: scanning, bad input, items, masks, helpers, loading."""

import logging
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from datasets import RED, DatasetError, ImageFolderData, Sample

HALF = (0.5, 0.5, 0.5)


def _folder(root, classes, size=(12, 10), kind="png"):
    """root/<class>/<i>.<kind>, solid colours; classes = {name: number of images}."""
    for c, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", size, (40 * c, 10 * i, 200)).save(root / name / f"{i}.{kind}")
    return root


def _data(root, **kwargs):
    return ImageFolderData(root, 8, HALF, HALF, **kwargs)


# -- the folder as a whole -------------------------------------------------------------------
def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere does not exist"):
        _data(tmp_path / "nowhere")


def test_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "pics.zip").write_bytes(b"PK")
    with pytest.raises(DatasetError, match=r"pics.zip is a file, not a folder"):
        _data(tmp_path / "pics.zip")


def test_empty_folder(tmp_path):
    (tmp_path / ".DS_Store").write_bytes(b"")  # hidden clutter does not count
    with pytest.raises(DatasetError, match="is empty"):
        _data(tmp_path)


def test_images_without_class_folders(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    with pytest.raises(DatasetError, match=r"no class sub-folders, only files \(a.png\)"):
        _data(tmp_path)


def test_a_single_class_is_not_enough(tmp_path):
    _folder(tmp_path, {"cat": 2})
    with pytest.raises(DatasetError, match=r"only one class \(cat\).*at least 2"):
        _data(tmp_path)


def test_a_class_folder_without_images_is_named(tmp_path):
    _folder(tmp_path, {"cat": 2, "dog": 2})
    (tmp_path / "bird").mkdir()
    (tmp_path / "bird" / "notes.txt").write_text("to do: find birds")
    with pytest.raises(DatasetError, match=r"class folders bird hold no usable images"):
        _data(tmp_path)


def test_a_class_whose_images_are_all_broken_is_named(tmp_path):
    _folder(tmp_path, {"cat": 2, "dog": 2})
    (tmp_path / "eel").mkdir()
    (tmp_path / "eel" / "1.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"class folders eel hold no usable images"):
        _data(tmp_path)


def test_every_image_broken(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.png").write_text("nope")
    with pytest.raises(DatasetError, match=r"no usable images.*All 2 images were unusable"):
        _data(tmp_path)


def test_expected_classes_must_match(tmp_path):
    _folder(tmp_path, {"cat": 1, "dog": 1, "eel": 1})
    with pytest.raises(DatasetError, match=r"missing ant; unexpected eel"):
        _data(tmp_path, classes=["cat", "dog", "ant"])
    data = _data(tmp_path, classes=["eel", "dog", "cat"])  # label order as given
    assert data.classes == ["eel", "dog", "cat"]
    assert data.targets[data.index_of("eel/0.png")] == 0


# -- individual files ------------------------------------------------------------------------
def test_bad_files_are_skipped_named_and_counted(tmp_path, caplog):
    _folder(tmp_path, {"cat": 2, "dog": 2})
    (tmp_path / "cat" / "empty.jpg").write_bytes(b"")
    (tmp_path / "cat" / "text.jpg").write_text("I am not a JPEG")
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "dog" / "cut.png")
    whole = (tmp_path / "dog" / "cut.png").read_bytes()
    (tmp_path / "dog" / "cut.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "dog" / "readme.txt").write_text("ignored by its extension")
    (tmp_path / "dog" / ".hidden.png").write_text("hidden files are ignored")
    with caplog.at_level(logging.WARNING, logger="datasets"):
        data = _data(tmp_path)
    assert sorted(data.relpaths) == ["cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png"]
    reasons = dict(data.skipped)
    assert sorted(reasons) == ["cat/empty.jpg", "cat/text.jpg", "dog/cut.png"]
    assert reasons["cat/empty.jpg"] == "empty file (0 bytes)"
    assert reasons["cat/text.jpg"].startswith("not an image")
    assert "truncated" in reasons["dog/cut.png"]
    for name in ("empty.jpg", "text.jpg", "cut.png"):
        assert any(name in record.getMessage() for record in caplog.records if record.levelno == logging.WARNING)


def test_too_large_images_are_skipped(tmp_path, caplog):
    _folder(tmp_path, {"cat": 1, "dog": 1}, size=(12, 10))
    Image.new("RGB", (20, 20)).save(tmp_path / "dog" / "huge.png")
    with caplog.at_level(logging.WARNING, logger="datasets"):
        data = _data(tmp_path, max_pixels=120)
    assert data.relpaths == ["cat/0.png", "dog/0.png"]
    assert data.skipped == [("dog/huge.png", "too large: 20 x 20 = 400 pixels, more than the limit of 120")]
    assert "huge.png" in caplog.text


# -- items -----------------------------------------------------------------------------------
def test_item_is_a_normalised_square_sample(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("RGB", (30, 12), (255, 0, 51)).save(tmp_path / "a" / "red.png")
    Image.new("L", (5, 7), 0).save(tmp_path / "b" / "gray.png")
    data = ImageFolderData(tmp_path, 6, HALF, HALF)
    item = data[0]
    assert isinstance(item, Sample)
    assert item.image.shape == (3, 6, 6) and item.image.dtype == torch.float32
    # (v / 255 - 0.5) / 0.5 for a solid colour: 255 -> 1, 0 -> -1, 51 -> -0.6
    assert torch.allclose(item.image[:, 3, 3], torch.tensor([1.0, -1.0, -0.6]))
    assert (item.target, item.index, item.has_mask) == (0, 0, False)
    assert item.mask.shape == (6, 6) and not item.mask.any()
    gray = data[1]
    assert gray.target == 1 and gray.image.shape == (3, 6, 6)
    assert torch.allclose(gray.image, torch.full((3, 6, 6), -1.0))


def test_mask_is_aligned_with_the_transformed_image(tmp_path):
    # A 64x48 picture with a white block at rows 15..29, cols 32..63; at 16x16 the image is
    # stretched 4x horizontally and 3x vertically, so the block covers rows 5..9, cols 8..15.
    picture = np.zeros((48, 64, 3), dtype=np.uint8)
    picture[15:30, 32:64] = 255
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.fromarray(picture).save(tmp_path / "data" / name / "x.png")
    data = ImageFolderData(tmp_path / "data", 16, (0, 0, 0), (1, 1, 1), masks_dir=tmp_path / "masks")
    mask = np.zeros((48, 64), dtype=np.int8)
    mask[15:30, 32:64] = RED
    data.masks.save("a/x.png", mask)
    # The brush window may save the mask at its own (shrunk) size: the same block at half size.
    shown = data.display_image(1, max_side=32)
    assert shown.shape == (24, 32, 3)
    data.masks.save("b/x.png", (shown[..., 0] > 127).astype(np.int8) * RED)

    expected = np.zeros((16, 16), dtype=bool)
    expected[5:10, 8:16] = True
    for index in (0, 1):
        item = data[index]
        assert item.has_mask
        assert np.array_equal(item.mask.numpy() == RED, expected)
        assert np.array_equal(item.image[0].numpy() > 0.5, expected)


def test_display_image(tmp_path):
    _folder(tmp_path, {"a": 1, "b": 1}, size=(40, 20))
    data = _data(tmp_path)
    full = data.display_image(1)
    assert full.dtype == np.uint8 and full.shape == (20, 40, 3)
    assert full[0, 0].tolist() == [40, 0, 200]
    assert data.display_image(1, max_side=10).shape == (5, 10, 3)
    assert data.display_image(1, max_side=1000).shape == (20, 40, 3)


def test_helpers_subset_index_of_counts(tmp_path):
    root = tmp_path / "data"
    _folder(root, {"cat": 3, "dog": 2})
    data = _data(root, masks_dir=tmp_path / "masks")
    assert data.num_classes == 2 and len(data) == 5
    assert data.class_counts() == {"cat": 3, "dog": 2}
    assert data.index_of("dog/1.png") == 4
    with pytest.raises(DatasetError, match="cat/9.png is not in this data set"):
        data.index_of("cat/9.png")
    part = data.subset([4, 0])
    assert part.relpaths == ["dog/1.png", "cat/0.png"] and part.targets == [1, 0]
    assert part.classes == data.classes and part.root == data.root
    assert part.masks is data.masks
    assert part.index_of("cat/0.png") == 1 and part[1].index == 1
    assert part.class_counts() == {"cat": 1, "dog": 1}
    assert len(data) == 5  # the parent is unchanged


def test_masks_repainted_between_reads_and_annotated_indices(tmp_path):
    root = tmp_path / "data"
    _folder(root, {"cat": 2, "dog": 2}, size=(4, 4))
    data = _data(root, masks_dir=tmp_path / "masks")
    assert data.annotated_indices() == []
    data.masks.save("dog/0.png", np.full((4, 4), RED, dtype=np.int8))
    assert data[2].has_mask and data[2].mask.eq(RED).all()
    data.masks.save("dog/0.png", np.zeros((4, 4), dtype=np.int8))
    assert data[2].has_mask and not data[2].mask.any()
    assert data.annotated_indices() == [2]
    assert data.subset([3, 2]).annotated_indices() == [1]


def test_two_images_sharing_a_mask_file_are_refused(tmp_path):
    root = tmp_path / "data"
    _folder(root, {"cat": 1, "dog": 1})
    Image.new("RGB", (4, 4)).save(root / "cat" / "0.jpg")
    assert len(_data(root)) == 3  # fine without masks
    with pytest.raises(DatasetError, match=r"cat/0.jpg and cat/0.png .* share the mask file"):
        _data(root, masks_dir=tmp_path / "masks")


def test_picklable_for_dataloader_workers(tmp_path):
    root = tmp_path / "data"
    _folder(root, {"cat": 2, "dog": 2})
    data = _data(root, masks_dir=tmp_path / "masks")
    data.masks.save("cat/1.png", np.full((10, 12), RED, dtype=np.int8))
    copy = pickle.loads(pickle.dumps(data))
    for index in range(len(data)):
        assert torch.equal(copy[index].image, data[index].image)
        assert torch.equal(copy[index].mask, data[index].mask)


def test_default_collate_batches_samples(tmp_path):
    root = tmp_path / "data"
    _folder(root, {"cat": 3, "dog": 2})
    data = _data(root, masks_dir=tmp_path / "masks")
    data.masks.save("cat/2.png", np.full((10, 12), RED, dtype=np.int8))
    batch = next(iter(DataLoader(data, batch_size=4, shuffle=False)))
    assert isinstance(batch, Sample)
    assert batch.image.shape == (4, 3, 8, 8) and batch.image.dtype == torch.float32
    assert batch.target.tolist() == [0, 0, 0, 1]
    assert batch.mask.shape == (4, 8, 8) and batch.mask.dtype == torch.float32
    assert batch.has_mask.dtype == torch.bool
    assert batch.has_mask.tolist() == [False, False, True, False]
    assert batch.index.tolist() == [0, 1, 2, 3]


def test_an_image_broken_after_the_scan_gives_a_clear_error(tmp_path):
    _folder(tmp_path, {"cat": 1, "dog": 1})
    data = _data(tmp_path)
    (tmp_path / "dog" / "0.png").write_text("overwritten")
    with pytest.raises(DatasetError, match=r"dog/0.png"):
        data[1]


def test_nested_folders_and_uppercase_extensions(tmp_path):
    _folder(tmp_path, {"cat": 1, "dog": 1})
    (tmp_path / "cat" / "more").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "cat" / "more" / "X.PNG", format="PNG")
    (tmp_path / "dog" / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "dog" / ".ipynb_checkpoints" / "y.png")
    (tmp_path / ".trash").mkdir()
    data = _data(tmp_path)
    assert data.classes == ["cat", "dog"]
    assert data.relpaths == ["cat/0.png", "cat/more/X.PNG", "dog/0.png"]


def test_a_mask_folder_inside_the_image_folder_is_refused(tmp_path):
    _folder(tmp_path, {"cat": 1, "dog": 1})
    with pytest.raises(DatasetError, match="inside the image folder"):
        _data(tmp_path, masks_dir=tmp_path / "masks")
    with pytest.raises(DatasetError, match="inside the image folder"):
        _data(tmp_path, masks_dir=tmp_path / "cat" / "masks")
    assert _data(tmp_path, masks_dir=tmp_path / ".masks").masks is not None  # hidden: fine
