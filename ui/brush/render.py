"""The picture on the brush window's canvas: image, heatmap and paint, composed in numpy.

`BrushRender` makes the composite of the visible part of an image at display size: the image
scaled (nearest neighbour when enlarged, so every image pixel is a crisp square of the grid the
mask is painted on; Lanczos when shrunk), its saliency heatmap mixed over it, and the red /
green paint with a solid rim on top. It caches what only changes with the image, the zoom, the
pan or the canvas size, so an opacity slider only re-mixes, and `refresh(box)` recomposes just
the display rectangle a stroke touched. The window pushes the arrays into one `PhotoImage`.

Arrays: images `H x W x 3` uint8 RGB; masks `H x W` int8 in {-1, 0, +1} at the image's size;
saliency `h x w` float in [0, 1] at any size; the composite `H' x W' x 3` uint8, the visible
display pixels (its top-left corner at display pixel `origin`). No tkinter here.
"""

from __future__ import annotations

from typing import Hashable, Optional, Tuple

import numpy as np
from PIL import Image

from ui.helpers.geometry import Fit, View, display_span, view_fit, visible_indices
from ui.helpers.overlay import heatmap_rgba, mask_overlay, mix, paint_outline

from .strokes import Box

OUTLINE_PX = 2  # solid rim of painted regions, in screen pixels (tells paint from heatmap)

__all__ = ["OUTLINE_PX", "BrushRender", "scale_visible"]


def scale_visible(image: np.ndarray, fit: Fit, rows: np.ndarray, cols: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The display pixels `rows` x `cols` of `image` (H x W x 3 uint8) at `fit`, the visible part
    starting at display pixel (x0, y0): len(rows) x len(cols) x 3 uint8."""
    if fit.scale >= 1:
        # Enlarged: nearest neighbour keeps every image pixel a crisp square, the grid the mask
        # is painted on.
        return image[rows][:, cols]
    scale = fit.scale
    height, width = image.shape[:2]
    # The box in image pixels; clamped, since (x0 + n) / scale may pass the edge by a rounding
    # error, which PIL refuses ("box can't exceed original image size": the brush window did not
    # open on a 900 x 600 image at 1280 x 720).
    box = (
        min(x0 / scale, width),
        min(y0 / scale, height),
        min((x0 + len(cols)) / scale, width),
        min((y0 + len(rows)) / scale, height),
    )
    return np.asarray(Image.fromarray(image).resize((max(1, len(cols)), max(1, len(rows))), Image.Resampling.LANCZOS, box=box))


class BrushRender:
    """The composite on screen and the caches it is made from (one image at a time)."""

    def __init__(self) -> None:
        self.fit: Optional[Fit] = None  # where the image lies on the canvas
        self.rows = self.cols = np.zeros(0, np.int64)  # image pixel of each visible display row / column
        self.origin = (0, 0)  # display pixel of the composite's top-left corner
        self.shown: Optional[np.ndarray] = None  # the visible image at display size, H' x W' x 3 uint8
        self.heat: Optional[np.ndarray] = None  # its heatmap colours, H' x W' x 3 uint8
        self.base: Optional[np.ndarray] = None  # image + heatmap at display size
        self.composite: Optional[np.ndarray] = None  # base + paint at display size
        self._shown_key: Optional[tuple] = None  # what shown and heat are for
        self._heat_full: Optional[Tuple[Hashable, np.ndarray]] = None  # (image key, heatmap at image size)

    def render(
        self,
        key: Hashable,
        image: np.ndarray,
        saliency: np.ndarray,
        mask: np.ndarray,
        canvas: Tuple[int, int],
        view: View,
        heat_opacity: float,
        paint_opacity: float,
    ) -> np.ndarray:
        """Compose the whole visible picture and return it (`self.composite`).

        key: names the image (its index): the heatmap and scaled image are cached under it.
        image: H x W x 3 uint8; saliency: h x w in [0, 1]; mask: H x W int8 in {-1, 0, 1}.
        canvas: (width, height) in screen pixels; view: zoom and pan. heat_opacity: [0, 1], 0
        for no heatmap; paint_opacity: [0, 1]."""
        width, height = canvas
        fit = view_fit(image.shape[1], image.shape[0], width, height, view)
        shown_key = (key, fit, width, height)
        if shown_key != self._shown_key:
            # The visible part of the scaled image and its heatmap change only with the image,
            # the zoom, the pan or the canvas size; the opacity sliders only re-mix them.
            rows, cols, x0, y0 = visible_indices(fit, width, height)
            self.fit = fit
            self.rows, self.cols, self.origin = rows, cols, (x0, y0)
            self.shown = scale_visible(image, fit, rows, cols, x0, y0)
            self.heat = self._heatmap_at_image_size(key, saliency, image.shape[:2])[rows][:, cols]
            self._shown_key = shown_key
        self.base = mix(self.shown, self.heat, heat_opacity) if heat_opacity > 0 else self.shown
        self.composite = self.compose(mask, 0, self.base.shape[0], 0, self.base.shape[1], paint_opacity)
        return self.composite

    def zoom(self, image_shape: Tuple[int, ...], canvas: Tuple[int, int]) -> float:
        """The zoom on screen relative to the whole image fitting the canvas (1.0 = fit)."""
        whole = view_fit(image_shape[1], image_shape[0], canvas[0], canvas[1], View()).scale
        return self.fit.scale / max(1e-9, whole)

    def _heatmap_at_image_size(self, key: Hashable, saliency: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
        """The heatmap colours of image `key` at its own size, H x W x 3 uint8 (cached per image)."""
        if self._heat_full is None or self._heat_full[0] != key:
            self._heat_full = (key, heatmap_rgba(saliency, shape)[..., :3])
        return self._heat_full[1]

    def refresh(self, mask: np.ndarray, box: Box, paint_opacity: float) -> Optional[Tuple[int, int, np.ndarray]]:
        """Recompose the display pixels showing the mask pixels in `box` (after a stroke) in
        `self.composite`; returns (left, top, the changed patch h x w x 3 uint8) in composite
        coordinates, or None when nothing visible changed."""
        if self.composite is None:
            return None
        top, bottom = display_span(self.rows, box.top, box.bottom)
        left, right = display_span(self.cols, box.left, box.right)
        if top >= bottom or left >= right:
            return None
        # The rim of the paint around the changed pixels moves too.
        top, left = max(0, top - OUTLINE_PX), max(0, left - OUTLINE_PX)
        bottom = min(self.composite.shape[0], bottom + OUTLINE_PX)
        right = min(self.composite.shape[1], right + OUTLINE_PX)
        self.composite[top:bottom, left:right] = self.compose(mask, top, bottom, left, right, paint_opacity)
        return left, top, np.ascontiguousarray(self.composite[top:bottom, left:right])

    def compose(self, mask: np.ndarray, top: int, bottom: int, left: int, right: int, paint_opacity: float) -> np.ndarray:
        """Base + paint of `mask` for display rows [top, bottom) and columns [left, right):
        (bottom - top) x (right - left) x 3 uint8."""
        # The outline needs OUTLINE_PX of neighbours around the region to be exact at its edge.
        outer_top, outer_left = max(0, top - OUTLINE_PX), max(0, left - OUTLINE_PX)
        outer_bottom = min(self.base.shape[0], bottom + OUTLINE_PX)
        outer_right = min(self.base.shape[1], right + OUTLINE_PX)
        shown = mask[self.rows[outer_top:outer_bottom]][:, self.cols[outer_left:outer_right]]
        rim = paint_outline(shown, OUTLINE_PX)
        inner = (slice(top - outer_top, bottom - outer_top), slice(left - outer_left, right - outer_left))
        return mask_overlay(self.base[top:bottom, left:right], shown[inner], paint_opacity, outline=rim[inner])
