"""Opening one image file safely and turning it into an 8-bit RGB picture.

Everything the data layer knows about image files lives here: the pixel limit that keeps a
huge (or maliciously crafted) file from being decoded, the fast reduced-scale decode used to
validate JPEGs, and the conversion of every Pillow mode to RGB:

- grayscale (`L`, `1`) and CMYK / YCbCr / LAB / HSV: Pillow's own conversion;
- anything with transparency (`RGBA`, `LA`, `PA`, palette or RGB/L with a transparent colour):
  composited over white, so hidden colour under fully transparent pixels never leaks in;
- 16-bit grayscale (`I;16*`): scaled by 1/257 (65535 -> 255), not clipped;
- 32-bit integer `I`: the same 16-bit scaling when the values fit in 0..65535, otherwise the
  image's own range is stretched to 0..255; 32-bit float `F`: values in [0, 1] are times
  255, values in [0, 255] are kept, anything else is stretched to 0..255.

EXIF orientation is applied, so a phone photo appears (and is masked) the way a viewer shows it.
"""

from __future__ import annotations

import logging
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DatasetError

log = logging.getLogger(__name__)

# 64 megapixels: larger than any camera photo a classifier is trained on, and below Pillow's own
# decompression-bomb limits (89 MP warning, 179 MP error), so our check always runs first.
DEFAULT_MAX_PIXELS = 64_000_000

# Composited under transparent pixels: what image viewers show on a plain background.
BACKGROUND_RGB = (255, 255, 255)

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_EXIF_ORIENTATION = 0x0112


class UnusableImage(Exception):
    """Why one file cannot be used (internal; the message is the reason shown to the user)."""


def open_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode the image at `path` in its own mode, refusing empty, broken or oversized files.

    draft_size: for JPEGs, let the decoder scale down by up to 8x as long as the result stays at
        least this large (width, height); much faster for big photos. Ignored for other formats.
    Raises UnusableImage with a short reason.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the open, /dev/zero never end
            raise UnusableImage("not a regular file (a pipe, device or socket); not opened")
        if info.st_size == 0:
            raise UnusableImage("empty file (0 bytes)")
        with open(path, "rb") as file, warnings.catch_warnings(record=True) as caught:
            # Our pixel limit below is the real guard; Pillow's bomb warning would only be noise
            # (its hard error, for files far over any sane limit, is reported as "too large"),
            # and its "Corrupt EXIF data" / "Truncated File Read" warnings (a JPEG's EXIF is read
            # at open for its dpi) leaked to stderr past the one-line errors: logged instead.
            warnings.simplefilter("always")
            image = Image.open(file)
            width, height = image.size
            if width * height > max_pixels:
                raise UnusableImage(
                    f"too large: {width} x {height} = {width * height:,} pixels, more than the limit of {max_pixels:,}"
                )
            if draft_size is not None and image.format == "JPEG":
                image.draft(None, draft_size)
            image.load()
        for warning in caught:
            if not issubclass(warning.category, Image.DecompressionBombWarning):
                log.debug("%s: %s", path, warning.message)
    except UnusableImage:
        raise
    except Image.DecompressionBombError as error:
        raise UnusableImage(f"too large: {error}") from None
    except UnidentifiedImageError:
        raise UnusableImage("not an image (Pillow recognises no image format in it)") from None
    except OSError as error:
        if isinstance(error, (FileNotFoundError, PermissionError)):
            raise UnusableImage(f"cannot read the file: {error.strerror}") from None
        raise UnusableImage(f"truncated or corrupt: {error}") from None
    except Exception as error:  # noqa: BLE001 -- decoders raise many types on hostile input
        raise UnusableImage(f"corrupt: {type(error).__name__}: {error}") from None
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """The picture as an 8-bit `RGB` image, per the rules in the module docstring."""
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return Image.fromarray(_high_depth_to_uint8(image), mode="L").convert("RGB")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND_RGB + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_uint8(image: Image.Image) -> np.ndarray:
    """16/32-bit single-channel pixels as uint8 HxW (see the module docstring for the rules)."""
    values = np.asarray(image).astype(np.float64)
    if image.mode in _SIXTEEN_BIT_MODES:
        scaled = values / 257.0
    else:
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if image.mode == "I" and low >= 0 and high <= 65535:
            scaled = values / 257.0
        elif image.mode == "F" and low >= 0 and high <= 1:
            scaled = values * 255.0
        elif image.mode == "F" and low >= 0 and high <= 255:
            scaled = values
        else:
            span = high - low
            scaled = (values - low) * (255.0 / span) if span > 0 else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip per the EXIF orientation tag; untouched (no copy) when there is none."""
    # A broken EXIF block makes Pillow warn ("Corrupt EXIF data", "Truncated File Read") on
    # stderr, past the one-line errors; it only costs the orientation, so it is logged instead.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation != 1:
                image = ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001 -- a broken EXIF block must not make a good image unusable
            pass
    for warning in caught:
        log.debug("EXIF of %s: %s", getattr(image, "filename", "an image") or "an image", warning.message)
    return image


def load_rgb(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """The image at `path` as upright 8-bit RGB.

    Raises DatasetError naming the file when it cannot be used (e.g. it changed after the scan).
    """
    try:
        image = open_image(path, max_pixels=max_pixels, draft_size=draft_size)
    except UnusableImage as problem:
        raise DatasetError(
            f"Cannot use the image {path}: {problem}. Replace or remove the file and load the folder again."
        ) from None
    return to_rgb(_apply_orientation(image))


def check_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Why the image at `path` cannot be used, or None when it decodes and converts cleanly.

    JPEGs are decoded at 1/8 scale: every byte of the compressed data is still read, so a
    truncated file is still caught, but a 50 MP photo takes milliseconds.
    """
    try:
        to_rgb(_apply_orientation(open_image(path, max_pixels=max_pixels, draft_size=(1, 1))))
    except UnusableImage as problem:
        return str(problem)
    except Exception as error:  # noqa: BLE001 -- a conversion failure is also "unusable"
        return f"cannot convert to RGB: {type(error).__name__}: {error}"
    return None
