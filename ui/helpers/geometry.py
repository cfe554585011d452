"""Canvas <-> image coordinates for an image fitted into a canvas, keeping its aspect ratio.

The brush window shows an `H x W` image scaled by one factor and centred in the canvas; the
mouse arrives in canvas pixels and paint lands in image pixels. Conventions used throughout:
image pixel `(col, row)` covers the continuous square `[col, col + 1) x [row, row + 1)`, so its
centre is `(col + 0.5, row + 0.5)`; canvas coordinates are the canvas' own (after `canvasx`).
Pure functions, no tkinter, so they are tested without a display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

# At or above this zoom the scale is rounded down to a whole number, so that every image pixel
# covers the same number of canvas pixels and a 32 x 32 image stays a crisp grid (losing at
# most 1/8 of the canvas to the rounding).
INTEGER_ZOOM_FROM = 8.0


@dataclass(frozen=True)
class Fit:
    """Where an image lies in a canvas."""

    scale: float  # canvas pixels per image pixel (> 0)
    offset_x: int  # canvas x of the image's left edge
    offset_y: int  # canvas y of the image's top edge
    image_w: int  # image width in pixels
    image_h: int  # image height in pixels

    @property
    def display_w(self) -> int:
        """Width of the scaled image on the canvas, in canvas pixels."""
        return max(1, int(round(self.image_w * self.scale)))

    @property
    def display_h(self) -> int:
        """Height of the scaled image on the canvas, in canvas pixels."""
        return max(1, int(round(self.image_h * self.scale)))


def fit_image(image_w: int, image_h: int, canvas_w: int, canvas_h: int, integer_zoom_from: float = INTEGER_ZOOM_FROM) -> Fit:
    """The largest scale at which the image fits the canvas, centred (aspect ratio kept).

    Upscales small images and shrinks large ones. Scales of at least `integer_zoom_from` are
    rounded down to an integer (crisp pixel grid). Offsets are whole canvas pixels.
    """
    if image_w <= 0 or image_h <= 0:
        raise ValueError(f"image size must be positive, got {image_w} x {image_h}")
    canvas_w, canvas_h = max(1, int(canvas_w)), max(1, int(canvas_h))
    scale = min(canvas_w / image_w, canvas_h / image_h)
    if scale >= integer_zoom_from:
        scale = float(math.floor(scale))
    display_w = max(1, int(round(image_w * scale)))
    display_h = max(1, int(round(image_h * scale)))
    return Fit(
        scale=scale,
        offset_x=(canvas_w - display_w) // 2,
        offset_y=(canvas_h - display_h) // 2,
        image_w=int(image_w),
        image_h=int(image_h),
    )


def to_image(fit: Fit, x: float, y: float) -> Tuple[float, float]:
    """Canvas point -> continuous image point (x to the right, y down; may lie outside)."""
    return (x - fit.offset_x) / fit.scale, (y - fit.offset_y) / fit.scale


def to_canvas(fit: Fit, x: float, y: float) -> Tuple[float, float]:
    """Continuous image point -> canvas point (inverse of `to_image`)."""
    return x * fit.scale + fit.offset_x, y * fit.scale + fit.offset_y


def radius_to_canvas(fit: Fit, radius: float) -> float:
    """A length in image pixels -> canvas pixels (the brush cursor's radius)."""
    return radius * fit.scale


def radius_to_image(fit: Fit, radius: float) -> float:
    """A length in canvas pixels -> image pixels."""
    return radius / fit.scale


def pixel_at(fit: Fit, x: float, y: float) -> Tuple[int, int] | None:
    """The image pixel `(col, row)` under a canvas point, or None when it is off the image."""
    image_x, image_y = to_image(fit, x, y)
    col, row = math.floor(image_x), math.floor(image_y)
    if 0 <= col < fit.image_w and 0 <= row < fit.image_h:
        return col, row
    return None


def display_indices(fit: Fit) -> Tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour sampling of the image on the display grid.

    Returns `(rows, cols)`: int64 arrays of lengths `display_h` and `display_w`; display pixel
    `(i, j)` shows image pixel `(rows[i], cols[j])`, the one under its centre. Both are
    non-decreasing, so `image[rows][:, cols]` is the displayed image.
    """
    rows = np.floor((np.arange(fit.display_h) + 0.5) * fit.image_h / fit.display_h)
    cols = np.floor((np.arange(fit.display_w) + 0.5) * fit.image_w / fit.display_w)
    return (np.clip(rows, 0, fit.image_h - 1).astype(np.int64), np.clip(cols, 0, fit.image_w - 1).astype(np.int64))


def display_span(indices: np.ndarray, start: int, stop: int) -> Tuple[int, int]:
    """Display range `[a, b)` showing the image rows (or columns) `[start, stop)`.

    `indices` is one of the arrays of `display_indices`; used to refresh only the part of the
    displayed image that a brush stroke touched.
    """
    return (int(np.searchsorted(indices, start, side="left")), int(np.searchsorted(indices, stop, side="left")))


# ----------------------------------------------------------------------------- zoom and pan
MAX_ZOOM = 32.0  # magnification over the fitted view
ZOOM_STEP = 1.25  # one wheel notch or one + / - press


@dataclass(frozen=True)
class View:
    """How far the user zoomed in and where: `zoom` over the fitted view (1 = the whole image
    fits) and the image point shown at the canvas centre (None: the image's centre)."""

    zoom: float = 1.0
    center_x: float | None = None
    center_y: float | None = None


def _clamp_offset(offset: float, canvas: int, display: int) -> int:
    """Centre an image smaller than the canvas; else keep the canvas covered by the image."""
    if display <= canvas:
        return (canvas - display) // 2
    return int(round(min(0.0, max(float(canvas - display), offset))))


def view_fit(image_w: int, image_h: int, canvas_w: int, canvas_h: int, view: View) -> Fit:
    """The `Fit` of a zoomed and panned view (the plain fit at zoom 1). Offsets may be
    negative: the image then extends beyond the canvas and only part of it is visible."""
    base = fit_image(image_w, image_h, canvas_w, canvas_h)
    if view.zoom <= 1.0 + 1e-9:
        return base
    scale = base.scale * min(MAX_ZOOM, view.zoom)
    center_x = image_w / 2 if view.center_x is None else view.center_x
    center_y = image_h / 2 if view.center_y is None else view.center_y
    display_w = max(1, int(round(image_w * scale)))
    display_h = max(1, int(round(image_h * scale)))
    canvas_w, canvas_h = max(1, int(canvas_w)), max(1, int(canvas_h))
    return Fit(
        scale=scale,
        offset_x=_clamp_offset(canvas_w / 2 - center_x * scale, canvas_w, display_w),
        offset_y=_clamp_offset(canvas_h / 2 - center_y * scale, canvas_h, display_h),
        image_w=int(image_w),
        image_h=int(image_h),
    )


def _settled(fit: Fit, zoom: float, canvas_w: int, canvas_h: int) -> View:
    """The view whose centre is what `fit` (already clamped) actually shows."""
    if zoom <= 1.0 + 1e-9:
        return View()
    center_x, center_y = to_image(fit, canvas_w / 2, canvas_h / 2)
    return View(zoom, center_x, center_y)


def zoom_view(view: View, image_w: int, image_h: int, canvas_w: int, canvas_h: int, x: float, y: float, factor: float) -> View:
    """Zoom by `factor` (> 1 in) keeping the image point under canvas point (x, y) in place."""
    fit = view_fit(image_w, image_h, canvas_w, canvas_h, view)
    zoom = min(MAX_ZOOM, max(1.0, view.zoom * factor))
    if zoom <= 1.0 + 1e-9:
        return View()
    point_x, point_y = to_image(fit, x, y)
    scale = fit.scale * zoom / view.zoom
    center_x = point_x + (canvas_w / 2 - x) / scale
    center_y = point_y + (canvas_h / 2 - y) / scale
    new = view_fit(image_w, image_h, canvas_w, canvas_h, View(zoom, center_x, center_y))
    return _settled(new, zoom, canvas_w, canvas_h)


def pan_view(view: View, image_w: int, image_h: int, canvas_w: int, canvas_h: int, dx: float, dy: float) -> View:
    """Move the picture by (dx, dy) canvas pixels (as when dragging it)."""
    if view.zoom <= 1.0 + 1e-9:
        return view
    fit = view_fit(image_w, image_h, canvas_w, canvas_h, view)
    center_x, center_y = to_image(fit, canvas_w / 2 - dx, canvas_h / 2 - dy)
    new = view_fit(image_w, image_h, canvas_w, canvas_h, View(view.zoom, center_x, center_y))
    return _settled(new, view.zoom, canvas_w, canvas_h)


def visible_span(offset: int, display: int, canvas: int) -> Tuple[int, int]:
    """Display pixels `[a, b)` (of `display`) that fall inside a canvas of `canvas` pixels
    when the display's first pixel is at canvas coordinate `offset`."""
    start = max(0, -int(offset))
    stop = min(int(display), int(canvas) - int(offset))
    return start, max(start, stop)


def visible_indices(fit: Fit, canvas_w: int, canvas_h: int) -> Tuple[np.ndarray, np.ndarray, int, int]:
    """`display_indices` for the visible part only: (rows, cols, x0, y0), where display pixel
    (y0 + i, x0 + j) shows image pixel (rows[i], cols[j]). Keeps a 32x zoom of a large image
    to a canvas-sized array."""
    x0, x1 = visible_span(fit.offset_x, fit.display_w, canvas_w)
    y0, y1 = visible_span(fit.offset_y, fit.display_h, canvas_h)
    rows = np.floor((np.arange(y0, y1) + 0.5) * fit.image_h / fit.display_h)
    cols = np.floor((np.arange(x0, x1) + 0.5) * fit.image_w / fit.display_w)
    return (np.clip(rows, 0, fit.image_h - 1).astype(np.int64), np.clip(cols, 0, fit.image_w - 1).astype(np.int64), x0, y0)
