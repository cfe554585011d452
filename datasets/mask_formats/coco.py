"""COCO JSON (instance segmentation) in, and the masks of a mask folder out as COCO JSON.

In: `images` ({id, file_name, height, width}), `categories` ({id, name}) and `annotations`
({image_id, category_id, segmentation}), the segmentation an RLE (compressed or not) or
polygons. The caller says which category names are red and which green; annotations of other
categories are counted in the plan's `ignored_labels`. A file whose categories are exactly
"red" and "green" (this app's export) maps them to those colours when the caller says nothing.

Out: one image entry per masked image (`file_name` its relpath in the data folder, so the file
reads back here and matches in other tools), categories "red" (id 1) and "green" (id 2), one
annotation per colour present, its segmentation a compressed RLE at the image's own size, with
`attributes.source` telling painted, propagated or imported masks apart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Collection, Dict, Optional

import numpy as np

from ..atomic_files import write_json_atomic
from ..errors import DatasetError
from ..masks import GREEN, RED, MaskStore, resize_mask
from .coco_rle import decode_rle, encode_rle, polygons_to_mask, rle_area_and_box
from .import_plan import DataImages, ImportPlan, PlanBuilder, Progress

EXPORT_CATEGORIES = (
    {"id": 1, "name": "red", "supercategory": "saliency"},
    {"id": 2, "name": "green", "supercategory": "saliency"},
)


def load_json(path: str | os.PathLike, what: str) -> Any:
    """The JSON value in `path`; DatasetError naming the line and column when it is broken."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"The {what} {path} does not exist.") from None
    except UnicodeDecodeError:
        raise DatasetError(f"The {what} {path} is not UTF-8 text; is it a JSON file?") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"The {what} {path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from None


def check_label_choice(red: Collection[str], green: Collection[str], available: Dict[str, int], what: str, source: str) -> None:
    """DatasetError when nothing is mapped, a name is both colours, or a name is not in the file."""
    found = ", ".join(f"{name} ({count})" for name, count in sorted(available.items())) or "none"
    if not red and not green:
        raise DatasetError(f"Say which {what} are red and which green (--red NAME, --green NAME); {source} has: {found}.")
    both = sorted(set(red) & set(green))
    if both:
        raise DatasetError(f"The {what} {', '.join(both)} cannot be both red and green.")
    missing = sorted(name for name in set(red) | set(green) if name not in available)
    if missing:
        raise DatasetError(f"{source} has no {what} {', '.join(missing)}; it has: {found}.")


def _field(entry: Any, key: str, kind: type | tuple, where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(f"{where} has no '{key}'.")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DatasetError(f"{where}: '{key}' has the wrong type ({type(value).__name__}).")
    return value


def read_coco(
    path: str | os.PathLike,
    images: DataImages,
    red: Collection[str],
    green: Collection[str],
    *,
    skip_unmatched: bool = False,
    progress: Optional[Progress] = None,
) -> ImportPlan:
    """The segmentations of a COCO JSON file whose category is named in `red` or `green`."""
    path = Path(path)
    data = load_json(path, "COCO file")
    name = path.name
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise DatasetError(f"{path} is not a COCO file: it needs 'images' and 'annotations' lists.")
    categories: Dict[int, str] = {}
    for number, entry in enumerate(data.get("categories") or []):
        where = f"{name}: category #{number}"
        categories[_field(entry, "id", int, where)] = str(_field(entry, "name", str, where))
    counts: Dict[str, int] = {name: 0 for name in categories.values()}
    for annotation in data["annotations"]:
        category = categories.get(annotation.get("category_id")) if isinstance(annotation, dict) else None
        if category is not None:
            counts[category] = counts.get(category, 0) + 1
    if not red and not green and set(counts) == {"red", "green"}:  # this app's own export reads back as it was
        red, green = ["red"], ["green"]
    check_label_choice(red, green, counts, "categories", name)
    entries: Dict[int, dict] = {}
    for number, entry in enumerate(data["images"]):
        where = f"{name}: image #{number}"
        image_id = _field(entry, "id", int, where)
        _field(entry, "file_name", str, where)
        for key in ("height", "width"):
            if _field(entry, key, int, where) <= 0:
                raise DatasetError(f"{where}: '{key}' must be positive.")
        entries[image_id] = entry
    by_image: Dict[int, list] = {}
    for number, annotation in enumerate(data["annotations"]):
        where = f"{name}: annotation #{number}"
        image_id = _field(annotation, "image_id", int, where)
        category_id = _field(annotation, "category_id", int, where)
        if category_id not in categories:
            raise DatasetError(f"{where}: its category_id {category_id} is not among the categories.")
        if image_id not in entries:
            raise DatasetError(f"{where}: its image_id {image_id} is not among the images.")
        by_image.setdefault(image_id, []).append((number, annotation))
    builder = PlanBuilder(images, "coco", path, skip_unmatched)
    total = len(by_image)
    for done, (image_id, image_annotations) in enumerate(by_image.items(), 1):
        entry = entries[image_id]
        size = (entry["height"], entry["width"])
        paint = {RED: np.zeros(size, dtype=bool), GREEN: np.zeros(size, dtype=bool)}
        for number, annotation in image_annotations:
            category = categories[annotation["category_id"]]
            colour = RED if category in red else GREEN if category in green else None
            if colour is None:
                builder.ignore(category)
                continue
            where = f"{name}: annotation #{number} ({entry['file_name']})"
            segmentation = annotation.get("segmentation")
            if isinstance(segmentation, dict):
                region = decode_rle(segmentation, where)
                if region.shape != size:
                    raise DatasetError(
                        f"{where}: its RLE is {region.shape[0]} x {region.shape[1]} but its image entry "
                        f"says {size[0]} x {size[1]}."
                    )
            else:
                region = polygons_to_mask(segmentation, size, where)
            paint[colour] |= region
        if paint[RED].any() or paint[GREEN].any():
            builder.add(entry["file_name"], size, paint[RED], paint[GREEN], where=f"{name}: {entry['file_name']}")
        if progress is not None:
            progress(done, total)
    return builder.finish()


def coco_document(
    store: MaskStore, images: DataImages, relpaths: Optional[list] = None, progress: Optional[Progress] = None
) -> dict:
    """The masks of `store` (all, or `relpaths`) as a COCO dict, each at its image's own size
    (the image's header; the stored size when the image is gone)."""
    relpaths = store.annotated() if relpaths is None else list(relpaths)
    document: dict = {
        "info": {"description": "masks exported by saliency-steering: red = discourage, green = encourage"},
        "images": [],
        "annotations": [],
        "categories": [dict(c) for c in EXPORT_CATEGORIES],
    }
    for number, relpath in enumerate(relpaths, 1):
        mask = store.load_array(relpath)
        if mask is None:
            continue
        size = images.size(relpath) if (images.root / relpath).is_file() else mask.shape
        mask = resize_mask(mask, size)
        document["images"].append({"id": number, "file_name": relpath, "height": int(size[0]), "width": int(size[1])})
        source = store.meta(relpath).get("source", "painted")
        for category_id, colour in ((1, RED), (2, GREEN)):
            region = mask == colour
            if not region.any():
                continue
            rle = encode_rle(region)
            area, box = rle_area_and_box(rle)
            document["annotations"].append(
                {
                    "id": len(document["annotations"]) + 1,
                    "image_id": number,
                    "category_id": category_id,
                    "segmentation": rle,
                    "area": area,
                    "bbox": box,
                    "iscrowd": 0,
                    "attributes": {"source": source},
                }
            )
        if progress is not None:
            progress(number, len(relpaths))
    return document


def export_coco(
    store: MaskStore,
    images: DataImages,
    out: str | os.PathLike,
    relpaths: Optional[list] = None,
    progress: Optional[Progress] = None,
) -> dict:
    """Write `coco_document` to `out` atomically; returns {"images": n, "annotations": n}."""
    document = coco_document(store, images, relpaths, progress)
    write_json_atomic(Path(out), document)
    return {"images": len(document["images"]), "annotations": len(document["annotations"])}
