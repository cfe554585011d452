"""Tests for datasets/masks.py: the on-disk format, paths, atomic writes and the cached store."""

import os
import pickle
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from datasets import GREEN, RED, DatasetError, MaskStore, mask_path, read_mask, read_mask_meta, write_mask
from datasets.masks import read_mask_array

EXAMPLE = np.array([[RED, 0, GREEN, 0], [0, RED, RED, GREEN], [GREEN, 0, 0, 0]], dtype=np.int8)


def test_constants_follow_the_method():
    assert (RED, GREEN) == (1, -1)


def test_round_trip_is_exact_and_the_file_is_the_documented_rgba(tmp_path):
    path = tmp_path / "m.png"
    write_mask(path, EXAMPLE)
    mask = read_mask(path)
    assert mask.dtype == torch.float32 and mask.shape == (3, 4)
    assert mask.tolist() == EXAMPLE.tolist()
    stored = Image.open(path)
    assert stored.mode == "RGBA"
    pixels = np.asarray(stored)
    assert pixels[0, 0].tolist() == [255, 0, 0, 255]
    assert pixels[0, 2].tolist() == [0, 255, 0, 255]
    assert pixels[0, 1, 3] == 0  # unmarked is transparent


def test_a_mask_of_another_size_is_resized_with_nearest_neighbour(tmp_path):
    small = np.array([[RED, 0], [GREEN, RED]], dtype=np.int8)
    write_mask(tmp_path / "small.png", small)
    up = read_mask(tmp_path / "small.png", size=(4, 6))
    assert up.shape == (4, 6)
    assert up.tolist() == np.kron(small, np.ones((2, 3), dtype=np.int8)).tolist()
    write_mask(tmp_path / "big.png", np.kron(small, np.ones((2, 2), dtype=np.int8)))
    assert read_mask(tmp_path / "big.png", size=(2, 2)).tolist() == small.tolist()
    assert set(read_mask(tmp_path / "big.png", size=(3, 5)).unique().tolist()) <= {-1, 0, 1}


def test_masks_saved_by_editors_are_read_with_the_near_colour_rule(tmp_path):
    rgb = np.array([[[250, 10, 5], [20, 200, 30], [255, 255, 0], [128, 128, 128], [128, 127, 127], [0, 0, 0]]], dtype=np.uint8)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "rgb.png")
    assert read_mask(tmp_path / "rgb.png").tolist() == [[RED, GREEN, 0, 0, RED, 0]]

    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 127], [0, 255, 0, 128], [0, 255, 0, 0]]], dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    assert read_mask(tmp_path / "rgba.png").tolist() == [[RED, 0, GREEN, 0]]

    palette = Image.new("P", (3, 1))
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    for x in range(3):
        palette.putpixel((x, 0), x)
    palette.save(tmp_path / "palette.png", transparency=0)
    assert read_mask(tmp_path / "palette.png").tolist() == [[0, RED, GREEN]]


def test_invalid_masks_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="-1"):
        write_mask(tmp_path / "bad.png", np.array([[0, 2]]))
    with pytest.raises(DatasetError, match="H x W"):
        write_mask(tmp_path / "bad.png", np.zeros((2, 2, 3), dtype=np.int8))
    assert not any(tmp_path.iterdir())
    (tmp_path / "junk.png").write_text("not a png")
    with pytest.raises(DatasetError, match="junk.png"):
        read_mask(tmp_path / "junk.png")
    with pytest.raises(DatasetError, match="does not exist"):
        read_mask(tmp_path / "missing.png")


def test_mask_path_replaces_the_suffix_and_stays_inside(tmp_path):
    masks = tmp_path / "masks"
    assert mask_path(masks, "3/img_0012.jpg") == masks / "3" / "img_0012.png"
    assert mask_path(masks, "cat/sub/a.b.tiff") == masks / "cat" / "sub" / "a.b.png"
    for bad in ["/etc/passwd", "../outside.png", "cat/../../x.png", "C:/x.png", "", "a\0.png"]:
        with pytest.raises(DatasetError):
            mask_path(masks, bad)


def test_a_symbolic_link_cannot_carry_a_mask_outside(tmp_path):
    masks, elsewhere = tmp_path / "masks", tmp_path / "elsewhere"
    masks.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, masks / "cat")
    with pytest.raises(DatasetError, match="outside the mask folder"):
        mask_path(masks, "cat/1.jpg")
    with pytest.raises(DatasetError):
        MaskStore(masks).save("cat/1.jpg", EXAMPLE)
    assert not any(elsewhere.iterdir())


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "deep" / "er" / "m.png"
    write_mask(path, EXAMPLE)  # creates the parent folders
    write_mask(path, -EXAMPLE)  # replaces
    assert os.listdir(path.parent) == ["m.png"]
    assert read_mask(path).tolist() == (-EXAMPLE).tolist()

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_mask(path, np.zeros((3, 4), dtype=np.int8))
    assert os.listdir(path.parent) == ["m.png"]  # no temp file left, old mask intact
    assert read_mask(path).tolist() == (-EXAMPLE).tolist()


def test_metadata_round_trip(tmp_path):
    path = tmp_path / "m.png"
    write_mask(path, EXAMPLE, meta={"source": "propagated", "score": 0.5, "note": "größer"})
    assert read_mask_meta(path) == {"source": "propagated", "score": "0.5", "note": "größer"}
    write_mask(path, EXAMPLE)
    assert read_mask_meta(path) == {}
    with pytest.raises(DatasetError, match="keys"):
        write_mask(path, EXAMPLE, meta={"": "x"})


def test_store_save_load_delete_and_meta(tmp_path):
    store = MaskStore(tmp_path / "masks", relpaths=["cat/1.jpg", "dog/2.png"])
    assert store.annotated() == [] and not store.has("cat/1.jpg")
    assert store.load("cat/1.jpg", (3, 4)) is None and store.load_array("cat/1.jpg") is None
    assert store.meta("cat/1.jpg") == {}

    path = store.save("cat/1.jpg", EXAMPLE, meta={"source": "user"})
    assert path == tmp_path / "masks" / "cat" / "1.png" and store.has("cat/1.jpg")
    assert store.load("cat/1.jpg", (3, 4)).tolist() == EXAMPLE.tolist()
    assert store.load("cat/1.jpg", (6, 8)).tolist() == np.kron(EXAMPLE, np.ones((2, 2))).tolist()
    assert store.load_array("cat/1.jpg").dtype == np.int8
    assert store.meta("cat/1.jpg") == {"source": "user"}
    # A mask whose image the store does not know is listed by its own relative path.
    write_mask(tmp_path / "masks" / "bird" / "9.png", EXAMPLE)
    write_mask(tmp_path / "masks" / ".trash" / "old.png", EXAMPLE)  # hidden: not listed
    assert store.annotated() == ["bird/9.png", "cat/1.jpg"]

    store.delete("cat/1.jpg")
    store.delete("cat/1.jpg")  # deleting twice is fine
    assert store.load("cat/1.jpg", (3, 4)) is None
    assert store.annotated() == ["bird/9.png"]


def test_store_returns_copies_so_callers_cannot_corrupt_the_cache(tmp_path):
    store = MaskStore(tmp_path)
    store.save("a.png", EXAMPLE)
    first = store.load("a.png", (3, 4))
    first.fill_(7)
    assert store.load("a.png", (3, 4)).tolist() == EXAMPLE.tolist()


def test_store_picks_up_a_mask_repainted_outside_it_even_with_the_same_mtime(tmp_path):
    store = MaskStore(tmp_path)
    store.save("a.png", EXAMPLE)
    assert store.load("a.png", (3, 4)).tolist() == EXAMPLE.tolist()
    before = os.stat(tmp_path / "a.png")
    write_mask(tmp_path / "a.png", -EXAMPLE)  # as the UI would, not through this store
    os.utime(tmp_path / "a.png", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert store.load("a.png", (3, 4)).tolist() == (-EXAMPLE).tolist()


def test_store_survives_concurrent_repainting(tmp_path):
    store = MaskStore(tmp_path)
    store.save("a.png", EXAMPLE)
    allowed = [EXAMPLE.tolist(), (-EXAMPLE).tolist()]
    stop, errors, writes = threading.Event(), [], [0]

    def painter():
        writer = MaskStore(tmp_path)
        flip = 1
        while not stop.is_set():
            flip = -flip
            writer.save("a.png", flip * EXAMPLE)
            writes[0] += 1

    thread = threading.Thread(target=painter)
    thread.start()
    try:
        reads = 0
        while reads < 200 or (writes[0] < 20 and reads < 100_000):
            mask = store.load("a.png", (3, 4)).tolist()
            reads += 1
            if mask not in allowed:
                errors.append(mask)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert writes[0] >= 20  # the reads really overlapped with repainting
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_store_pickles_without_its_lock_or_cache(tmp_path):
    store = MaskStore(tmp_path, relpaths=["x/1.jpg"])
    store.save("x/1.jpg", EXAMPLE)
    store.load("x/1.jpg", (3, 4))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.masks_dir == store.masks_dir
    assert copy.load("x/1.jpg", (3, 4)).tolist() == EXAMPLE.tolist()
    assert copy.annotated() == ["x/1.jpg"]


def test_store_refuses_a_file_as_its_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is a file"):
        MaskStore(tmp_path / "file")


def test_read_mask_array_dtype(tmp_path):
    write_mask(tmp_path / "m.png", EXAMPLE)
    array = read_mask_array(tmp_path / "m.png", size=(3, 4))
    assert array.dtype == np.int8 and array.tolist() == EXAMPLE.tolist()


def test_bool_regions_resize_like_masks():
    from datasets.masks import resize_bool, resize_mask

    region = np.zeros((4, 6), bool)
    region[1:3, 2:5] = True
    for size in [(4, 6), (8, 12), (3, 5), (7, 9)]:
        resized = resize_bool(region, size)
        assert resized.dtype == bool and resized.shape == size
        assert np.array_equal(resized, resize_mask(region.astype(np.int8), size) > 0)
    assert np.array_equal(resize_bool(region, (8, 12)), np.kron(region, np.ones((2, 2), bool)))


def test_load_refuses_a_mask_behind_a_link_out_of_the_mask_folder_as_the_other_reads_do(tmp_path):
    """`load` checks a path once per folder and file (it runs for every image of every batch),
    but still refuses what `has` and `load_array` refuse, so training never uses a mask the
    brush window cannot show."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_mask(elsewhere / "x.png", np.ones((4, 4), dtype=np.int8))
    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "a").symlink_to(elsewhere, target_is_directory=True)
    store = MaskStore(masks)
    for read in (lambda: store.has("a/x.jpg"), lambda: store.load_array("a/x.jpg"), lambda: store.load("a/x.jpg", (4, 4))):
        with pytest.raises(DatasetError, match="outside the mask folder"):
            read()
    (masks / "b").mkdir()
    write_mask(masks / "b" / "y.png", np.ones((4, 4), dtype=np.int8))
    assert store.load("b/y.jpg", (4, 4)).sum() == 16 and store.load("b/y.jpg", (4, 4)).sum() == 16  # cached path
