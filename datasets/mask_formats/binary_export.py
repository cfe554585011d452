"""The masks of a mask folder out as two folders of binary PNGs, one per colour.

`<out>/red/<relpath>.png` and `<out>/green/<relpath>.png`: 8-bit grayscale, 255 where the
mask has that colour, 0 elsewhere, at the image's own size, written only where the colour is
present. What segmentation tools and `binary_folder` read back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..atomic_files import atomic_open
from ..masks import GREEN, RED, MaskStore, mask_path, resize_mask
from .import_plan import DataImages, Progress

COLOUR_FOLDERS = {RED: "red", GREEN: "green"}


def export_binary_folders(
    store: MaskStore,
    images: DataImages,
    out: str | os.PathLike,
    relpaths: Optional[list] = None,
    progress: Optional[Progress] = None,
) -> dict:
    """Write the binary PNGs; returns {"red": n, "green": n} files written."""
    out = Path(out)
    relpaths = store.annotated() if relpaths is None else list(relpaths)
    written = {name: 0 for name in COLOUR_FOLDERS.values()}
    for done, relpath in enumerate(relpaths, 1):
        mask = store.load_array(relpath)
        if mask is not None:
            size = images.size(relpath) if (images.root / relpath).is_file() else mask.shape
            mask = resize_mask(mask, size)
            for colour, folder in COLOUR_FOLDERS.items():
                region = mask == colour
                if not region.any():
                    continue
                with atomic_open(mask_path(out / folder, relpath), "wb") as file:
                    Image.fromarray(np.where(region, 255, 0).astype(np.uint8), mode="L").save(file, format="PNG")
                written[folder] += 1
        if progress is not None:
            progress(done, len(relpaths))
    return written
