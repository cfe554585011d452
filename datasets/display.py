"""The size an image is shown at: the brush window paints at it and masks are stored at it.

Images are shown upright (EXIF rotation applied) with the long side capped at
`DISPLAY_MAX_SIDE`, keeping the aspect ratio. `display_size` gives that size from the file's
header alone, so a mask can be resized for an image without decoding the image.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

from PIL import Image

DISPLAY_MAX_SIDE = 768  # long side of the images sent to the brush window and the chooser
EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how the camera was held
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


def capped_size(height: int, width: int, max_side: Optional[int]) -> Tuple[int, int]:
    """(H, W) shrunk keeping the aspect ratio so the long side is at most `max_side` (never grown)."""
    if max_side is not None:
        scale = max_side / max(width, height)
        if scale < 1:
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return height, width


def display_size(path: os.PathLike | str, max_side: Optional[int] = None) -> Tuple[int, int]:
    """(H, W) of the image at `path` as `ImageFolderData.display_image` shows it.

    Reads only the header: EXIF rotations by 90 degrees swap the sides; the long side is capped
    at `max_side` (`capped_size`).
    """
    with Image.open(path) as image:
        width, height = image.size
        try:
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
        except Exception:  # noqa: BLE001 -- a broken EXIF block: display_image ignores it too
            orientation = 1
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return capped_size(height, width, max_side)
