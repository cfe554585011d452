"""COCO run-length encoding (RLE) and polygons, checked before pycocotools touches them.

COCO stores a segmentation as RLE (`{"size": [H, W], "counts": ...}`, column-major runs that
start with background; `counts` a list of ints, "uncompressed", or pycocotools' compact string)
or as polygons (`[[x0, y0, x1, y1, ...], ...]` in pixel coordinates). pycocotools does the
encoding, decoding and polygon rasterisation, so a mask drawn here is pixel for pixel what COCO's
own tools (and every tool built on them) see. It does not check what it is given, though: an RLE
whose runs add up to less than H x W decodes to whatever memory held (tried: 884 of 20 pixels
"on"), so every RLE is checked here first (`rle_counts`), and one that overruns, falls short or
is garbled gets a DatasetError saying which and where.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from ..errors import DatasetError


def _compressed_counts(text: str, where: str) -> list[int]:
    """The run lengths of pycocotools' compact RLE string (the inverse of its `rleToString`:
    6-bit groups offset by 48, 5 value bits each, 0x20 = more groups follow, sign from 0x10;
    from the third run on each value is a difference to the run two before)."""
    counts: list[int] = []
    position = 0
    length = len(text)
    while position < length:
        value = shift = 0
        more = True
        while more:
            if position >= length:
                raise DatasetError(f"{where}: the RLE string ends in the middle of a number (it is cut short).")
            code = ord(text[position]) - 48
            if not 0 <= code < 64:
                raise DatasetError(f"{where}: the RLE string holds {text[position]!r}, which is no RLE character.")
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def rle_counts(rle: Any, where: str) -> tuple[tuple[int, int], list[int]]:
    """((H, W), run lengths) of a COCO RLE dict, checked: the size two positive ints, the runs
    non-negative and adding up to exactly H x W. DatasetError naming `where` otherwise."""
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise DatasetError(f"{where}: an RLE segmentation needs 'size' and 'counts'; got {_short(rle)}.")
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise DatasetError(f"{where}: the RLE 'size' must be [height, width], two positive whole numbers; got {_short(size)}.")
    height, width = size
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        runs = _compressed_counts(counts, where)
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        runs = list(counts)
    else:
        raise DatasetError(f"{where}: RLE 'counts' must be a string or a list of whole numbers; got {_short(counts)}.")
    if any(v < 0 for v in runs):
        raise DatasetError(f"{where}: the RLE has a negative run length; the data is damaged.")
    total = sum(runs)
    if total > height * width:
        raise DatasetError(
            f"{where}: the RLE overruns its image: its runs cover {total} pixels, {height} x {width} has {height * width}."
        )
    if total < height * width:
        raise DatasetError(
            f"{where}: the RLE is cut short: its runs cover {total} pixels, {height} x {width} has {height * width}."
        )
    return (height, width), runs


def _runs_to_mask(runs: list[int], size: tuple[int, int]) -> np.ndarray:
    """Column-major runs that start with background, as a bool H x W array."""
    height, width = size
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(width, height).T


def decode_rle(rle: Any, where: str) -> np.ndarray:
    """A checked COCO RLE dict as a bool H x W array (its runs, once checked, are simply
    repeated: the same pixels pycocotools' decoder gives, without its numpy-2 warning)."""
    size, runs = rle_counts(rle, where)
    return _runs_to_mask(runs, size)


def polygons_to_mask(polygons: Any, size: tuple[int, int], where: str) -> np.ndarray:
    """COCO polygons (a list of flat [x0, y0, x1, y1, ...] lists, pixel coordinates) as a bool
    H x W array, rasterised by pycocotools. DatasetError for a polygon that is not a list of at
    least three finite points."""
    height, width = size
    if not isinstance(polygons, list) or not polygons:
        raise DatasetError(f"{where}: a polygon segmentation must be a non-empty list of [x, y, ...] lists.")
    checked = []
    for polygon in polygons:
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
            raise DatasetError(f"{where}: a polygon needs at least 3 points as [x0, y0, x1, y1, ...]; got {_short(polygon)}.")
        try:
            values = np.asarray(polygon, dtype=np.float64)
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: polygon coordinates must be numbers; got {_short(polygon)}.") from None
        if not np.isfinite(values).all():
            raise DatasetError(f"{where}: a polygon has a coordinate that is not a finite number.")
        checked.append(values.tolist())
    merged = coco_mask.merge(coco_mask.frPyObjects(checked, height, width))
    return _runs_to_mask(_compressed_counts(merged["counts"].decode("ascii"), where), size)


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """A bool H x W array as a JSON-ready compressed COCO RLE {"size": [H, W], "counts": str}."""
    rle = coco_mask.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_area_and_box(rle: dict[str, Any]) -> tuple[int, list[float]]:
    """(pixels on, [x, y, width, height]) of a compressed RLE from `encode_rle`."""
    compact = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return int(coco_mask.area(compact)), [float(v) for v in coco_mask.toBbox(compact)]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
