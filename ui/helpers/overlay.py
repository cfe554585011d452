"""What the brush window and the chooser draw: saliency heatmaps and paint over an image.

All functions are vectorised numpy on `H x W x 3` uint8 RGB images and return new arrays; the
colour map comes from matplotlib (no pyplot, no tkinter), looked up through a 256-entry table
so a 768 x 768 heatmap costs a few milliseconds.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import matplotlib
import numpy as np
from PIL import Image

from ui.brush.strokes import GREEN, RED

# viridis: dark purple = ignored, yellow = decisive. Not jet, the usual Grad-CAM look: its red
# (decisive) is the colour of the red paint ("not here"), so heat and paint could not be told apart.
DEFAULT_CMAP = "viridis"
RED_RGB = (255, 0, 0)  # colour of "discourage" paint
GREEN_RGB = (0, 255, 0)  # colour of "encourage" paint


@lru_cache(maxsize=8)
def _lut(cmap: str) -> np.ndarray:
    """256 x 4 uint8 RGBA table of a matplotlib colour map."""
    return matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256), bytes=True)


def resize_saliency(saliency: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """`h x w` saliency -> `H x W` float32 (`size = (H, W)`), bilinear, clipped to [0, 1]."""
    saliency = np.asarray(saliency, dtype=np.float32)
    if saliency.ndim != 2:
        raise ValueError(f"saliency must be h x w, got shape {saliency.shape}")
    height, width = size
    if saliency.shape != (height, width):
        saliency = np.asarray(Image.fromarray(saliency).resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.clip(np.nan_to_num(saliency, nan=0.0), 0.0, 1.0)


def heatmap_rgba(saliency: np.ndarray, size: Tuple[int, int] | None = None, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """Colour a saliency map: `h x w` float in [0, 1] -> `H x W x 4` uint8 RGBA (alpha 255).

    `size = (H, W)` resizes bilinearly first (the map comes at the model's input size); values
    outside [0, 1] are clipped, NaN counts as 0. Value `v` takes table entry `round(255 v)`.
    """
    saliency = resize_saliency(saliency, size or np.shape(saliency))
    index = np.rint(saliency * 255.0).astype(np.uint8)
    return _lut(cmap)[index]


def blend(
    image: np.ndarray, saliency: np.ndarray, opacity: float, show_heatmap: bool = True, cmap: str = DEFAULT_CMAP
) -> np.ndarray:
    """The image with its heatmap laid over it: `(1 - opacity) * image + opacity * heatmap`.

    `image`: H x W x 3 uint8 RGB. `saliency`: h x w in [0, 1], resized to H x W. `opacity` in
    [0, 1] (clipped). With `show_heatmap=False` (or opacity 0) a copy of the image. Returns
    H x W x 3 uint8.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8, got {image.dtype} {image.shape}")
    opacity = float(np.clip(opacity, 0.0, 1.0))
    if not show_heatmap or opacity == 0.0:
        return image.copy()
    return mix(image, heatmap_rgba(saliency, image.shape[:2], cmap)[..., :3], opacity)


def mix(image: np.ndarray, heat_rgb: np.ndarray, opacity: float) -> np.ndarray:
    """`round((1 - opacity) * image + opacity * heat_rgb)`, both H x W x 3 uint8 -> uint8.

    The cheap half of `blend`: a window that caches the coloured heatmap of an image calls only
    this when the opacity slider moves.
    """
    opacity = float(np.clip(opacity, 0.0, 1.0))
    base = image.astype(np.float32)
    out = heat_rgb.astype(np.float32)
    out -= base
    out *= opacity
    out += base
    np.rint(out, out=out)
    return out.astype(np.uint8)


def paint_outline(mask: np.ndarray, width: int = 2, *, at_border: bool = False) -> np.ndarray:
    """Marked pixels within `width` pixels (4-neighbour steps along a row or column) of a pixel
    with another value: the inner rim of every red / green region. H x W bool.

    Beyond the array the mask counts as continuing unchanged (no rim along the border: the brush
    window shows a crop of the image), or with `at_border` as unmarked (a region touching the
    image's edge is outlined there too: the chooser shows whole images).
    """
    mask = np.asarray(mask)
    if width <= 0:
        return np.zeros(mask.shape, bool)
    padded = np.pad(mask, width, mode="constant", constant_values=0) if at_border else np.pad(mask, width, mode="edge")
    height, width_px = mask.shape
    rim = np.zeros(mask.shape, bool)
    for step in range(-width, width + 1):
        if step:
            rim |= padded[width + step : width + step + height, width : width + width_px] != mask
            rim |= padded[width : width + height, width + step : width + step + width_px] != mask
    return rim & (mask != 0)


def mask_overlay(
    composite: np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.5,
    red_rgb: Tuple[int, int, int] = RED_RGB,
    green_rgb: Tuple[int, int, int] = GREEN_RGB,
    outline: np.ndarray | None = None,
) -> np.ndarray:
    """Paint drawn semi-transparently: red where `mask == RED`, green where `mask == GREEN`.

    `composite`: H x W x 3 uint8; `mask`: H x W in {-1, 0, 1} (same H x W). A marked pixel
    becomes `(1 - alpha) * pixel + alpha * colour` (rounded); unmarked pixels are unchanged.
    `outline` (H x W bool, e.g. `paint_outline(mask)`): marked pixels drawn in the solid colour,
    so paint stays distinct from a red or green heatmap under it. Returns a new H x W x 3 uint8.
    """
    composite = np.asarray(composite)
    mask = np.asarray(mask)
    if composite.shape[:2] != mask.shape:
        raise ValueError(f"mask {mask.shape} does not match image {composite.shape[:2]}")
    alpha = float(np.clip(alpha, 0.0, 1.0))
    out = composite.copy()
    for value, colour in ((RED, red_rgb), (GREEN, green_rgb)):
        where = mask == value
        if where.any():
            pixels = composite[where].astype(np.float32)
            colour_term = np.asarray(colour, dtype=np.float32) * alpha
            out[where] = np.rint(pixels * (1.0 - alpha) + colour_term).astype(np.uint8)
            if outline is not None:
                out[where & outline] = colour
    return out
