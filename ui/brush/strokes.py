"""Brush strokes rasterised into a mask array, and undo/redo of whole strokes.

A mask is an `H x W` int8 array in {-1, 0, +1} (`RED = 1` discourage, `GREEN = -1` encourage,
`0` unmarked) at the resolution of the displayed image. Points are continuous image
coordinates: pixel `(col, row)` covers `[col, col + 1) x [row, row + 1)` (see `ui.helpers.geometry`).
A brush of radius `r` paints every pixel whose centre lies within `r` of the brush centre,
and always the pixel under the centre itself, so even a tiny brush leaves a mark. Between two
mouse positions the brush paints the whole capsule (the disc swept along the segment), so a
fast stroke is continuous however far apart the motion events are.

Painting functions return the `Box` of pixels they looked at (clipped to the mask), so the
caller can refresh just that part of the screen; `None` when the brush is entirely off the
mask. Pure numpy, no tkinter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, NamedTuple, Optional

import numpy as np

from datasets.masks import GREEN, RED

ERASE = 0  # the eraser paints "unmarked"

__all__ = [
    "RED",
    "GREEN",
    "ERASE",
    "Box",
    "union",
    "paint_disc",
    "paint_segment",
    "Edit",
    "StrokeHistory",
    "rectangle_region",
    "polygon_region",
    "flood_region",
]


class Box(NamedTuple):
    """A rectangle of mask pixels: columns `[left, right)`, rows `[top, bottom)`."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def slices(self) -> tuple:
        """`mask[box.slices]` is the region (rows first)."""
        return slice(self.top, self.bottom), slice(self.left, self.right)


def union(a: Optional[Box], b: Optional[Box]) -> Optional[Box]:
    """The smallest box holding both (either may be None)."""
    if a is None:
        return b
    if b is None:
        return a
    return Box(min(a.left, b.left), min(a.top, b.top), max(a.right, b.right), max(a.bottom, b.bottom))


def _check(mask: np.ndarray, radius: float, value: int) -> None:
    if mask.ndim != 2:
        raise ValueError(f"mask must be H x W, got shape {mask.shape}")
    if value not in (RED, GREEN, ERASE):
        raise ValueError(f"value must be RED (1), GREEN (-1) or 0, got {value}")
    if not radius >= 0:
        raise ValueError(f"radius must be >= 0, got {radius}")


def paint_segment(mask: np.ndarray, x0: float, y0: float, x1: float, y1: float, radius: float, value: int) -> Optional[Box]:
    """Paint `value` on every pixel whose centre is within `radius` of the segment (x0,y0)-(x1,y1).

    The pixels under both ends are painted too. With `radius >= sqrt(1/2)` every pixel the
    segment passes through is painted, so the stroke has no gaps. Modifies `mask` in place.
    Returns the box examined (clipped to the mask), or None when the capsule misses the mask.
    """
    _check(mask, radius, value)
    height, width = mask.shape
    box = Box(
        max(0, math.floor(min(x0, x1) - radius)),
        max(0, math.floor(min(y0, y1) - radius)),
        min(width, math.floor(max(x0, x1) + radius) + 1),
        min(height, math.floor(max(y0, y1) + radius) + 1),
    )
    if box.left >= box.right or box.top >= box.bottom:
        return None
    # Pixel centres of the box, relative to the segment's start.
    px = np.arange(box.left, box.right, dtype=np.float64)[None, :] + 0.5 - x0
    py = np.arange(box.top, box.bottom, dtype=np.float64)[:, None] + 0.5 - y0
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    if length2 > 0:
        t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0)
        inside = (px - t * dx) ** 2 + (py - t * dy) ** 2 <= radius * radius
    else:
        inside = px * px + py * py <= radius * radius
    mask[box.slices][inside] = value
    for x, y in ((x0, y0), (x1, y1)):
        col, row = math.floor(x), math.floor(y)
        if 0 <= col < width and 0 <= row < height:
            mask[row, col] = value
    return box


def paint_disc(mask: np.ndarray, x: float, y: float, radius: float, value: int) -> Optional[Box]:
    """Paint `value` on every pixel whose centre is within `radius` of (x, y), and the pixel
    under (x, y). Modifies `mask` in place; returns the box examined or None (off the mask)."""
    return paint_segment(mask, x, y, x, y, radius, value)


@dataclass(frozen=True)
class Edit:
    """One undoable change: the region `box` held `before` and now holds `after`."""

    box: Box
    before: np.ndarray  # box-sized int8
    after: np.ndarray  # box-sized int8


class StrokeHistory:
    """Paints whole strokes into one mask and undoes / redoes them.

    `begin(x, y, radius, value)` starts a stroke with a disc, `extend(x, y)` paints the capsule
    from the last point, `end()` records the stroke as one edit (only the changed box, before
    and after, is kept). `clear()` is an edit too. A new edit drops the redo list.
    """

    def __init__(self, mask: np.ndarray, limit: int = 200):
        """`mask`: H x W int8 in {-1, 0, 1}, painted in place. `limit`: edits kept for undo."""
        if mask.ndim != 2 or mask.dtype != np.int8:
            raise ValueError(f"mask must be an H x W int8 array, got {mask.dtype} {mask.shape}")
        self.mask = mask
        self.limit = limit
        self._undo: List[Edit] = []
        self._redo: List[Edit] = []
        self._before: Optional[np.ndarray] = None  # the mask when the current stroke began
        self._box: Optional[Box] = None  # region touched by the current stroke
        self._last = (0.0, 0.0)
        self._radius = 1.0
        self._value = RED

    @property
    def drawing(self) -> bool:
        """True between `begin` and `end`."""
        return self._before is not None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_depth(self) -> int:
        """Edits that `undo` can take back."""
        return len(self._undo)

    def begin(self, x: float, y: float, radius: float, value: int) -> Optional[Box]:
        """Start a stroke at image point (x, y) with a disc; returns the box painted."""
        if self.drawing:
            self.end()
        # One copy per stroke (not per motion event); `end` keeps only the touched box of it.
        self._before = self.mask.copy()
        self._radius, self._value, self._last = float(radius), int(value), (x, y)
        self._box = paint_disc(self.mask, x, y, radius, value)
        return self._box

    def extend(self, x: float, y: float) -> Optional[Box]:
        """Continue the stroke to (x, y), painting the capsule from the last point."""
        if not self.drawing:
            return None
        box = paint_segment(self.mask, *self._last, x, y, self._radius, self._value)
        self._last = (x, y)
        self._box = union(self._box, box)
        return box

    def end(self) -> Optional[Edit]:
        """Finish the stroke; records and returns it as an edit, or None if nothing changed."""
        if not self.drawing:
            return None
        before, box = self._before, self._box
        self._before, self._box = None, None
        if box is None or np.array_equal(before[box.slices], self.mask[box.slices]):
            return None
        edit = Edit(box, before[box.slices].copy(), self.mask[box.slices].copy())
        self._push(edit)
        return edit

    def clear(self) -> Optional[Box]:
        """Erase the whole mask as one undoable edit; None when it was already empty."""
        if self.drawing:
            self.end()
        if not self.mask.any():
            return None
        height, width = self.mask.shape
        box = Box(0, 0, width, height)
        self._push(Edit(box, self.mask.copy(), np.zeros_like(self.mask)))
        self.mask[...] = 0
        return box

    def undo(self) -> Optional[Box]:
        """Take back the last edit; returns the box it changed, or None when there is none."""
        if self.drawing:
            self.end()
        if not self._undo:
            return None
        edit = self._undo.pop()
        self.mask[edit.box.slices] = edit.before
        self._redo.append(edit)
        return edit.box

    def redo(self) -> Optional[Box]:
        """Re-apply the last undone edit; returns its box, or None when there is none."""
        if self.drawing:
            self.end()
        if not self._redo:
            return None
        edit = self._redo.pop()
        self.mask[edit.box.slices] = edit.after
        self._undo.append(edit)
        return edit.box

    def apply_region(self, region: np.ndarray, value: int) -> Optional[Box]:
        """Set every pixel of the boolean `region` (H x W) to `value` as one undoable edit (a
        rectangle, a lasso, a fill); returns the box changed, None when nothing changed."""
        if self.drawing:
            self.end()
        _check(self.mask, 0, value)
        if region.shape != self.mask.shape:
            raise ValueError(f"region {region.shape} does not match the mask {self.mask.shape}")
        rows = np.flatnonzero(region.any(axis=1))
        cols = np.flatnonzero(region.any(axis=0))
        if rows.size == 0:
            return None
        box = Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        before = self.mask[box.slices].copy()
        after = before.copy()
        after[region[box.slices]] = value
        if np.array_equal(before, after):
            return None
        self.mask[box.slices] = after
        self._push(Edit(box, before, after))
        return box

    def _push(self, edit: Edit) -> None:
        self._undo.append(edit)
        del self._undo[: -self.limit]
        self._redo.clear()


# ------------------------------------------------------------------ regions: rectangle, lasso, fill
def rectangle_region(shape: tuple, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Pixels whose centres lie in the rectangle spanned by two image points (and always the
    pixel under the first point, so a click marks one pixel). H x W bool."""
    height, width = shape
    left, right = sorted((x0, x1))
    top, bottom = sorted((y0, y1))
    region = np.zeros(shape, bool)
    col0, col1 = max(0, math.ceil(left - 0.5)), min(width - 1, math.floor(right - 0.5))
    row0, row1 = max(0, math.ceil(top - 0.5)), min(height - 1, math.floor(bottom - 0.5))
    if col0 <= col1 and row0 <= row1:
        region[row0 : row1 + 1, col0 : col1 + 1] = True
    col, row = math.floor(x0), math.floor(y0)
    if 0 <= col < width and 0 <= row < height:
        region[row, col] = True
    return region


def polygon_region(shape: tuple, points) -> np.ndarray:
    """Pixels inside (or on) the closed polygon through the image points `[(x, y), ...]` (a
    lasso), H x W bool. Fewer than three points: the pixels under them."""
    from PIL import Image, ImageDraw

    height, width = shape
    picture = Image.new("1", (width, height), 0)
    # PIL puts pixel (col, row)'s centre at integer coordinates: shift by half a pixel.
    vertices = [(float(x) - 0.5, float(y) - 0.5) for x, y in points]
    if len(vertices) >= 3:
        ImageDraw.Draw(picture).polygon(vertices, fill=1, outline=1)
    elif vertices:
        ImageDraw.Draw(picture).line(vertices, fill=1)
    return np.asarray(picture, dtype=bool).copy()


def flood_region(mask: np.ndarray, x: float, y: float) -> np.ndarray:
    """The 4-connected pixels holding the same value as the pixel under image point (x, y):
    what a paint-bucket fill recolours (e.g. the inside of an outline). H x W bool; empty
    when the point is off the mask."""
    from PIL import Image, ImageDraw

    height, width = mask.shape
    col, row = math.floor(x), math.floor(y)
    if not (0 <= col < width and 0 <= row < height):
        return np.zeros(mask.shape, bool)
    # a copy: an image made by fromarray shares the (read-only) numpy buffer
    picture = Image.fromarray((mask.astype(np.int16) + 1).astype(np.uint8)).copy()
    ImageDraw.floodfill(picture, (col, row), 255, thresh=0)
    return np.asarray(picture) == 255
