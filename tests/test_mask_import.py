"""Masks from other tools (datasets.mask_formats): binary folders, COCO JSON, Label Studio.

Round trips are pixel-exact where the format is exact (RLE, brush RLE, binary PNG); polygons
are compared with the region they enclose. Every malformed input gives one DatasetError and
leaves the mask folder untouched.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from datasets import DatasetError, MaskStore
from datasets.mask_formats import (
    DataImages,
    apply_import,
    detect_format,
    existing_hand_painted,
    export_binary_folders,
    export_coco,
    read_binary_folder,
    read_coco,
    read_label_studio,
)
from datasets.mask_formats.coco_rle import encode_rle
from datasets.masks import GREEN, RED

HEIGHT, WIDTH = 20, 16  # not square, so a transposed mask cannot pass


@pytest.fixture
def data(tmp_path):
    """Two classes, three images each, 20 x 16 px; the same file name in both classes once."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for name in ("a", "b", f"only_{cls}"):
            pixels = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{name}.jpg" if name == "b" else root / cls / f"{name}.png")
    return DataImages.scan(root)


def random_region(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    region = np.zeros((HEIGHT, WIDTH), dtype=bool)
    top, left = rng.integers(0, 10, 2)
    region[top : top + 7, left : left + 5] = True
    region[rng.random((HEIGHT, WIDTH)) < 0.1] = True  # ragged edges, single pixels
    return region


def masks_in(store: MaskStore) -> dict:
    return {r: store.load_array(r) for r in store.annotated()}


# ---------------------------------------------------------------- Label Studio brush encoder
def brush_rle(region: np.ndarray) -> list:
    """Label Studio's brush RLE of `region` (RGBA bytes, alpha 255 where painted), written
    from the format's description (thi.ng rle-pack), independent of the decoder under test."""
    rgba = np.zeros(region.shape + (4,), dtype=np.uint8)
    rgba[region] = 255
    values = rgba.ravel()
    bits = [f"{values.size:032b}", f"{8 - 1:05b}"] + [f"{n - 1:04b}" for n in (3, 4, 8, 16)]
    start = 0
    while start < values.size:
        stop = start
        while stop < values.size and values[stop] == values[start] and stop - start < 2**16:
            stop += 1
        length = stop - start
        if length == 1:
            bits.append("0" + "00" + "000" + f"{values[start]:08b}")  # a literal of one value
        else:
            index, size = next((i, s) for i, s in enumerate((3, 4, 8, 16)) if length <= 2**s)
            bits.append("1" + f"{index:02b}" + f"{length - 1:0{size}b}" + f"{values[start]:08b}")
        start = stop
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return [int(text[i : i + 8], 2) for i in range(0, len(text), 8)]


def brush_result(region, label, height=HEIGHT, width=WIDTH, rle=None):
    return {
        "type": "brushlabels",
        "from_name": "tag",
        "to_name": "image",
        "original_height": height,
        "original_width": width,
        "value": {"format": "rle", "rle": rle if rle is not None else brush_rle(region), "brushlabels": [label]},
    }


# ------------------------------------------------------------------------------ binary folders
def test_binary_folder_flat_with_suffix_and_nested(data, tmp_path):
    folder = tmp_path / "objects"
    (folder / "dog").mkdir(parents=True)
    expected = {}
    for seed, (name, relpath, scale) in enumerate(
        [("cat/a.png", "cat/a.png", 255), ("dog/a.png", "dog/a.png", 1), ("only_cat_mask.png", "cat/only_cat.png", 255)]
    ):
        region = random_region(seed)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((region * scale).astype(np.uint8), mode="L").save(folder / name)
        expected[relpath] = region
    plan = read_binary_folder(folder, DataImages(data.root, data.relpaths, strip_suffix="_mask"), GREEN)
    assert [m.relpath for m in plan.masks] == sorted(expected)
    store = MaskStore(data.root.parent / "masks")
    outcome = apply_import(plan, store)
    assert sorted(outcome.written) == sorted(expected)
    for relpath, region in expected.items():
        mask = store.load_array(relpath)
        np.testing.assert_array_equal(mask, np.where(region, GREEN, 0))
        assert store.meta(relpath)["source"] == "imported"


def test_binary_in_coco_out_and_back_is_pixel_exact(data, tmp_path):
    folder = tmp_path / "artifacts"
    folder.mkdir()
    regions = {f"{c}/{n}": random_region(i) for i, (c, n) in enumerate([("cat", "a"), ("dog", "b"), ("dog", "only_dog")])}
    for key, region in regions.items():
        (folder / key).parent.mkdir(exist_ok=True)
        Image.fromarray((region * 255).astype(np.uint8)).save(folder / f"{key}.png")
    store = MaskStore(tmp_path / "masks")
    apply_import(read_binary_folder(folder, data, RED), store)
    before = masks_in(store)
    assert len(before) == 3

    export_coco(store, data, tmp_path / "out.json")
    document = json.loads((tmp_path / "out.json").read_text())
    assert {c["name"] for c in document["categories"]} == {"red", "green"}
    assert all(isinstance(a["segmentation"]["counts"], str) for a in document["annotations"])
    again = MaskStore(tmp_path / "again")
    apply_import(read_coco(tmp_path / "out.json", data, red=[], green=[]), again)  # its own export maps itself
    after = masks_in(again)
    assert after.keys() == before.keys()
    for relpath in before:
        np.testing.assert_array_equal(after[relpath], before[relpath])

    counts = export_binary_folders(store, data, tmp_path / "binary")
    assert counts == {"red": 3, "green": 0}
    third = MaskStore(tmp_path / "third")
    apply_import(read_binary_folder(tmp_path / "binary" / "red", data, RED), third)
    for relpath, mask in masks_in(third).items():
        np.testing.assert_array_equal(mask, before[relpath])


# ------------------------------------------------------------------------------------- COCO
def coco_file(path, images, annotations, categories=({"id": 1, "name": "lesion"}, {"id": 2, "name": "ruler"})):
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": list(categories)}))
    return path


def test_coco_rle_compressed_and_uncompressed_by_category(data, tmp_path):
    object_region, ruler_region = random_region(1), random_region(2)
    uncompressed = []  # column-major runs starting with background, as COCO's iscrowd RLE
    flat = ruler_region.ravel(order="F")
    value, run = False, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            uncompressed.append(run)
            value, run = pixel, 1
    uncompressed.append(run)
    path = coco_file(
        tmp_path / "c.json",
        [{"id": 7, "file_name": "images/cat/a.png", "height": HEIGHT, "width": WIDTH}],
        [
            {"id": 1, "image_id": 7, "category_id": 1, "segmentation": encode_rle(object_region), "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 2, "segmentation": {"size": [HEIGHT, WIDTH], "counts": uncompressed}},
        ],
    )
    assert detect_format(path) == "coco"
    plan = read_coco(path, data, red=["ruler"], green=["lesion"])
    store = MaskStore(tmp_path / "masks")
    apply_import(plan, store)
    mask = store.load_array("cat/a.png")
    expected = np.where(ruler_region, RED, np.where(object_region, GREEN, 0))  # red wins where both
    np.testing.assert_array_equal(mask, expected)
    assert plan.overlap_pixels == int((object_region & ruler_region).sum())


def test_coco_polygons_fill_their_region_and_round_trip_exactly(data, tmp_path):
    # a rectangle from x=2..10, y=3..15 (pixel edges)
    rectangle = [2, 3, 10, 3, 10, 15, 2, 15]
    path = coco_file(
        tmp_path / "p.json",
        [{"id": 1, "file_name": "dog/b.jpg", "height": HEIGHT, "width": WIDTH}],
        [{"id": 1, "image_id": 1, "category_id": 2, "segmentation": [rectangle]}],
    )
    store = MaskStore(tmp_path / "masks")
    apply_import(read_coco(path, data, red=["ruler"], green=[]), store)
    mask = store.load_array("dog/b.jpg")
    inside = np.zeros((HEIGHT, WIDTH), dtype=bool)
    inside[4:14, 3:9] = True  # the pixels well inside the rectangle
    assert (mask[inside] == RED).all()
    outside = np.ones((HEIGHT, WIDTH), dtype=bool)
    outside[2:17, 1:12] = False  # the pixels well outside
    assert (mask[outside] == 0).all()
    painted = int((mask == RED).sum())
    assert abs(painted - 8 * 12) <= 8 + 12  # the rectangle's area, give or take its edge rows

    export_coco(store, data, tmp_path / "out.json")
    again = MaskStore(tmp_path / "again")
    apply_import(read_coco(tmp_path / "out.json", data, red=["red"], green=["green"]), again)
    np.testing.assert_array_equal(again.load_array("dog/b.jpg"), mask)


# ----------------------------------------------------------------------------- Label Studio
def test_label_studio_brush_and_polygon(data, tmp_path):
    artifact, object_region = random_region(3), random_region(4)
    tasks = [
        {
            "id": 1,
            "data": {"image": "/data/upload/3/8f3a2b1c-only_cat.png"},
            "annotations": [{"id": 10, "result": [brush_result(artifact, "Ruler"), brush_result(object_region, "Object")]}],
        },
        {
            "id": 2,
            "data": {"image": "/data/local-files/?d=photos/dog/a.png"},
            "annotations": [
                {"id": 11, "was_cancelled": True, "result": [brush_result(np.ones((HEIGHT, WIDTH), bool), "Ruler")]},
                {
                    "id": 12,
                    "result": [
                        {
                            "type": "polygonlabels",
                            "original_height": HEIGHT,
                            "original_width": WIDTH,
                            # x, y in percent of the width and height: the rectangle x 4..12, y 5..15
                            "value": {"points": [[25, 25], [75, 25], [75, 75], [25, 75]], "polygonlabels": ["Object"]},
                        },
                        {"type": "rectanglelabels", "value": {"rectanglelabels": ["Ruler"]}},
                    ],
                },
            ],
        },
    ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    assert detect_format(path) == "label-studio"
    plan = read_label_studio(path, data, red=["Ruler"], green=["Object"])
    assert [m.relpath for m in plan.masks] == ["cat/only_cat.png", "dog/a.png"]
    assert plan.ignored_labels == {"(rectanglelabels results)": 1}
    store = MaskStore(tmp_path / "masks")
    apply_import(plan, store)
    np.testing.assert_array_equal(
        store.load_array("cat/only_cat.png"), np.where(artifact, RED, np.where(object_region, GREEN, 0))
    )
    polygon = store.load_array("dog/a.png")
    assert (polygon[6:14, 5:11] == GREEN).all() and (polygon == RED).sum() == 0
    assert (polygon == GREEN).sum() <= 9 * 11 and (polygon[:4] == 0).all()

    export_coco(store, data, tmp_path / "out.json")
    again = MaskStore(tmp_path / "again")
    apply_import(read_coco(tmp_path / "out.json", data, red=["red"], green=["green"]), again)
    for relpath, mask in masks_in(store).items():
        np.testing.assert_array_equal(again.load_array(relpath), mask)


# ----------------------------------------------------------------- malformed: one error each
def assert_nothing_written(store):
    assert not store.masks_dir.exists() or not any(store.masks_dir.rglob("*.png"))


def test_wrong_size_is_one_clear_error(data, tmp_path):
    path = coco_file(
        tmp_path / "c.json",
        [
            {"id": 1, "file_name": "cat/a.png", "height": HEIGHT, "width": WIDTH},
            {"id": 2, "file_name": "dog/a.png", "height": 40, "width": 32},
        ],
        [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_rle(random_region(0))},
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": [[1, 1, 20, 1, 20, 20]]},
        ],
    )
    with pytest.raises(DatasetError, match=r"1 masks .* do not have their image's size: .*40 x 32 .*dog/a.png is 20 x 16"):
        read_coco(path, data, red=["lesion"], green=[])


def test_unknown_image_names_error_or_skip(data, tmp_path):
    path = coco_file(
        tmp_path / "c.json",
        [
            {"id": 1, "file_name": "cat/a.png", "height": HEIGHT, "width": WIDTH},
            {"id": 2, "file_name": "zebra_01.png", "height": HEIGHT, "width": WIDTH},
        ],
        [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_rle(random_region(0))},
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": encode_rle(random_region(1))},
        ],
    )
    with pytest.raises(
        DatasetError, match=r"1 annotated images in .* are not in the data folder .*zebra_01.png.*--skip-unmatched"
    ):
        read_coco(path, data, red=["lesion"], green=[])
    plan = read_coco(path, data, red=["lesion"], green=[], skip_unmatched=True)
    assert plan.unmatched == ("zebra_01.png",) and [m.relpath for m in plan.masks] == ["cat/a.png"]


def test_a_name_two_images_share_is_ambiguous(data, tmp_path):
    path = coco_file(
        tmp_path / "c.json",
        [{"id": 1, "file_name": "a.png", "height": HEIGHT, "width": WIDTH}],
        [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_rle(random_region(0))}],
    )
    with pytest.raises(DatasetError, match=r"fit several images: a.png \(could be cat/a.png, dog/a.png\)"):
        read_coco(path, data, red=["lesion"], green=[])


def test_broken_json_names_line_and_column(data, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [\n  {"id": 1,, }\n')
    with pytest.raises(DatasetError, match=r"not valid JSON: .* at line 2, column"):
        read_coco(path, data, red=["lesion"], green=[])
    path.write_text('[{"data": {"image": "a.png"}, "annotations": [')
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_label_studio(path, data, red=["x"], green=[])


@pytest.mark.parametrize(
    "counts, message",
    [
        ([10, HEIGHT * WIDTH], "overruns its image"),
        ([10, 20], "is cut short"),
        ("0`", "ends in the middle of a number"),
        ("~~~", "no RLE character"),
    ],
)
def test_rle_that_overruns_or_falls_short_is_refused(data, tmp_path, counts, message):
    path = coco_file(
        tmp_path / "c.json",
        [
            {"id": 1, "file_name": "cat/a.png", "height": HEIGHT, "width": WIDTH},
            {"id": 2, "file_name": "dog/a.png", "height": HEIGHT, "width": WIDTH},
        ],
        [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_rle(random_region(0))},
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": {"size": [HEIGHT, WIDTH], "counts": counts}},
        ],
    )
    store = MaskStore(tmp_path / "masks")
    with pytest.raises(DatasetError, match=rf"annotation #1 \(dog/a.png\): the RLE .*{message}"):
        apply_import(read_coco(path, data, red=["lesion"], green=[]), store)
    assert_nothing_written(store)


def test_brush_rle_that_overruns_or_is_cut_short(data, tmp_path):
    region = random_region(0)
    good = brush_rle(region)
    cut = good[: len(good) // 2]
    too_long = brush_rle(np.zeros((HEIGHT + 1, WIDTH), dtype=bool))  # more values than 20 x 16 x 4
    for rle, message in [(cut, "cut short"), (too_long, "holds 1344 values but a 20 x 16 image has 1280")]:
        path = tmp_path / "ls.json"
        tasks = [
            {"data": {"image": "cat/a.png"}, "annotations": [{"result": [brush_result(region, "Ruler")]}]},
            {"data": {"image": "dog/a.png"}, "annotations": [{"result": [brush_result(region, "Ruler", rle=rle)]}]},
        ]
        path.write_text(json.dumps(tasks))
        store = MaskStore(tmp_path / "masks")
        with pytest.raises(DatasetError, match=rf"task #1 \(dog/a.png\).*{message}"):
            apply_import(read_label_studio(path, data, red=["Ruler"], green=[]), store)
        assert_nothing_written(store)
    # a stream whose one record fills past the values it announced: a run of 1281 of 1280
    bits = f"{HEIGHT * WIDTH * 4:032b}" + f"{7:05b}" + "".join(f"{n - 1:04b}" for n in (3, 4, 8, 16))
    bits += "1" + "11" + f"{HEIGHT * WIDTH * 4:016b}" + f"{0:08b}"
    bits += "0" * (-len(bits) % 8)
    overrun = [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]
    path.write_text(
        json.dumps([{"data": {"image": "dog/a.png"}, "annotations": [{"result": [brush_result(region, "Ruler", rle=overrun)]}]}])
    )
    with pytest.raises(DatasetError, match="the brush RLE overruns its image: a record reaches value 1281 of 1280"):
        read_label_studio(path, data, red=["Ruler"], green=[])


def test_labels_must_be_chosen_and_exist(data, tmp_path):
    path = coco_file(
        tmp_path / "c.json",
        [{"id": 1, "file_name": "cat/a.png", "height": HEIGHT, "width": WIDTH}],
        [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_rle(random_region(0))}],
    )
    with pytest.raises(DatasetError, match=r"Say which categories are red and which green .* has: lesion \(1\)"):
        read_coco(path, data, red=[], green=[])
    with pytest.raises(DatasetError, match=r"has no categories tumour; it has: lesion \(1\)"):
        read_coco(path, data, red=["tumour"], green=[])
    with pytest.raises(DatasetError, match="cannot be both red and green"):
        read_coco(path, data, red=["lesion"], green=["lesion"])


def test_a_broken_mask_picture_stops_the_import_before_writing(data, tmp_path):
    folder = tmp_path / "objects"
    (folder / "cat").mkdir(parents=True)
    Image.fromarray((random_region(0) * 255).astype(np.uint8)).save(folder / "cat" / "a.png")
    (folder / "cat" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    store = MaskStore(tmp_path / "masks")
    with pytest.raises(DatasetError, match=r"b.png cannot be read as a picture"):
        apply_import(read_binary_folder(folder, data, GREEN), store)
    assert_nothing_written(store)


# ------------------------------------------------------------------------- existing masks
def test_hand_painted_masks_are_kept_unless_asked(data, tmp_path):
    store = MaskStore(tmp_path / "masks")
    painted = np.zeros((HEIGHT, WIDTH), dtype=np.int8)
    painted[0:3, 0:3] = RED
    store.save("cat/a.png", painted)  # hand-painted: no source
    store.save("dog/a.png", painted, {"source": "propagated", "from": "cat/a.png"})
    folder = tmp_path / "objects"
    (folder / "cat").mkdir(parents=True)
    (folder / "dog").mkdir()
    region = np.zeros((HEIGHT, WIDTH), dtype=bool)
    region[10:15, 5:10] = True
    for key in ("cat/a", "dog/a", "cat/b"):
        Image.fromarray((region * 255).astype(np.uint8)).save(folder / f"{key}.png")
    plan = read_binary_folder(folder, data, GREEN)
    assert existing_hand_painted(plan, store) == ["cat/a.png"]

    outcome = apply_import(plan, store)
    assert outcome.kept == ("cat/a.png",) and outcome.replaced_propagated == ("dog/a.png",)
    np.testing.assert_array_equal(store.load_array("cat/a.png"), painted)
    np.testing.assert_array_equal(store.load_array("dog/a.png"), np.where(region, GREEN, 0))
    assert store.meta("dog/a.png")["source"] == "imported"

    apply_import(plan, store, on_existing="merge")
    np.testing.assert_array_equal(store.load_array("cat/a.png"), np.where(region, GREEN, painted))
    apply_import(plan, store, on_existing="overwrite")
    np.testing.assert_array_equal(store.load_array("cat/a.png"), np.where(region, GREEN, 0))


def test_import_needs_no_tkinter():
    import subprocess
    import sys

    code = "import sys, datasets.mask_formats; assert 'tkinter' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
