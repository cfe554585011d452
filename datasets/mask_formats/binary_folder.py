"""A folder of binary masks (one grayscale or black-and-white picture per image) as red or green.

Segmentation data sets ship their object masks this way, beside the images: white (or 1) where
the object is, black (0) elsewhere. The folder may mirror the data folder ("3/img_0012.png")
or be flat ("img_0012.png"), and mask names may carry an ending ("img_0012_mask.png",
`strip_suffix="_mask"`); `image_matching` says how a name finds its image.

A pixel is "on" when it is non-zero and at least half the mask's brightest value: 0/1 and 0/255
masks read exactly, and the faint noise of a JPEG-saved mask stays off. Colour and alpha are
looked at too (an RGBA mask drawn on a transparent canvas): a transparent pixel is off.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..errors import DatasetError
from ..masks import GREEN, RED
from .import_plan import DataImages, ImportPlan, PlanBuilder, Progress

READERS = 4  # threads decoding mask pictures
CHUNK = 256  # pictures handed to them at once
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg", ".webp", ".pgm", ".pbm")


def binary_pixels(image: Image.Image) -> np.ndarray:
    """The "on" pixels of a binary mask picture (see the module docstring), bool H x W."""
    if image.mode in ("1", "L", "I", "I;16", "F"):
        values = np.asarray(image if image.mode != "1" else image.convert("L"), dtype=np.float64)
        alpha = None
    else:
        rgba = np.asarray(image.convert("RGBA"))
        values = rgba[..., :3].max(axis=-1).astype(np.float64)
        alpha = rgba[..., 3]
    brightest = values.max() if values.size else 0
    on = (values > 0) & (2 * values >= brightest)
    if alpha is not None:
        on &= alpha > 0
    return on


def read_binary_folder(
    folder: str | os.PathLike,
    images: DataImages,
    colour: int,
    *,
    skip_unmatched: bool = False,
    progress: Optional[Progress] = None,
) -> ImportPlan:
    """Every mask picture under `folder` (hidden files skipped) as `colour` (RED or GREEN)."""
    folder = Path(folder)
    if colour not in (RED, GREEN):
        raise ValueError(f"colour must be RED or GREEN; got {colour!r}")
    if not folder.is_dir():
        raise DatasetError(f"The mask folder {folder} does not exist or is not a folder.")
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in MASK_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )
    if not files:
        raise DatasetError(f"The folder {folder} holds no mask pictures (files ending in {', '.join(MASK_EXTENSIONS)}).")
    builder = PlanBuilder(images, "binary", folder, skip_unmatched)
    done = 0
    with ThreadPoolExecutor(max_workers=READERS) as pool:  # PNG decoding releases the GIL
        for start in range(0, len(files), CHUNK):  # in chunks: decoded masks never pile up
            chunk = files[start : start + CHUNK]
            for path, on in zip(chunk, pool.map(_read_on_pixels, chunk)):
                red, green = (on, None) if colour == RED else (None, on)
                relative = path.relative_to(folder).as_posix()
                builder.add(relative, on.shape, red, green, where=relative)
                done += 1
                if progress is not None:
                    progress(done, len(files))
    return builder.finish()


def _read_on_pixels(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            return binary_pixels(image)
    except Exception as error:  # noqa: BLE001 -- any decoder failure means a broken file
        raise DatasetError(f"The mask {path} cannot be read as a picture ({error}).") from None
