"""An image folder in torchvision's layout (`root/<class>/<image>`), checked and ready to train on.

Folder scanning is torchvision's (`find_classes`, `IMG_EXTENSIONS`; `datasets.folder_scan`); this
module adds what an interactive tool needs on top: every image is decoded once when the folder
is scanned, so a broken file is reported up front (skipped, with the reason, in `skipped`)
instead of crashing an epoch; user mistakes in the folder layout raise DatasetError with a
message that says what to fix; and each item carries its mask from a MaskStore.

Items are `Sample(image, target, mask, has_mask, index)`; torch's default collate turns a list
of them into a Sample of batched tensors.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

from .decoded_cache import DecodedImageCache, cache_bytes
from .display import capped_size
from .errors import DatasetError
from .folder_scan import (
    EXTENSIONS_TEXT,
    check_masks_outside,
    class_folders,
    class_mismatch,
    examples,
    find_images,
    is_hidden,
    scan_classes,
)
from .image_loading import DEFAULT_MAX_PIXELS, check_image, load_rgb
from .masks import MaskStore, _mask_key
from .samples import Sample, SampleBatch, stack_samples

# The names callers import from here, wherever they live now.
__all__ = [
    "ImageFolderData",
    "Sample",
    "SampleBatch",
    "check_masks_outside",
    "class_folders",
    "class_mismatch",
    "stack_samples",
]

log = logging.getLogger(__name__)


class ImageFolderData(Dataset):
    """The images of `root/<class>/<image>`, resized to input_size x input_size and normalised.

    root: the data folder.
    input_size: side of the square model input; every image is stretched to it (bilinear,
        antialiased), without keeping the aspect ratio, so a mask stretched the same way stays
        aligned.
    mean, std: per-channel normalisation of the model (3 values each, for pixels in [0, 1]).
    masks_dir: folder of the masks (see datasets.masks); None for no masks.
    classes: the expected class names in label order (e.g. from a checkpoint, or a training
        folder); the folder must have exactly these. None: the folder's sub-folders, sorted.
    max_pixels: images with more pixels are skipped as too large.

    Attributes: root, classes, class_to_idx, targets, relpaths, skipped (relpath, reason),
    masks (MaskStore or None), input_size, mean, std, max_pixels.
    Raises DatasetError when the folder cannot be used as a whole (see module docstring).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        masks_dir: str | os.PathLike | None = None,
        classes: Sequence[str] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        *,
        what: str = "image folder",
    ):
        self.root = Path(root).expanduser()
        self.input_size = int(input_size)
        if self.input_size <= 0:
            raise DatasetError(f"The model input size must be positive; got {input_size}.")
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise DatasetError(f"mean and std need 3 values each, std > 0; got {mean}, {std}.")
        self.max_pixels = int(max_pixels)

        if masks_dir is not None:
            check_masks_outside(Path(masks_dir).expanduser(), self.root)
        found = scan_classes(self.root, what)
        if classes is None:
            self.classes = found
        else:
            self.classes = [str(c) for c in classes]
            mismatch = class_mismatch(self.classes, found)
            if mismatch:
                raise DatasetError(
                    f"The {what} {self.root} must have the class folders "
                    f"{examples(self.classes)}; it has {mismatch}. Give it one "
                    "sub-folder per class, with the same names."
                )
        if len(self.classes) < 2:
            raise DatasetError(
                f"The {what} {self.root} has only one class ({self.classes[0]}); a classifier "
                "needs at least 2. Add a sub-folder of images for each other class."
            )
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

        self.relpaths, self.targets, self.skipped = self._scan(what)
        self.masks = None
        if masks_dir is not None:
            self._check_mask_names()
            self.masks = MaskStore(masks_dir, self.relpaths)
        self.transform = transforms.Compose(
            [
                transforms.Resize(
                    (self.input_size, self.input_size), interpolation=transforms.InterpolationMode.BILINEAR, antialias=True
                ),
                transforms.ToTensor(),
                transforms.Normalize(self.mean, self.std),
            ]
        )
        self._index_of: dict[str, int] | None = None
        self.decoded_cache: DecodedImageCache | None = None

    def cache_decoded(self, max_bytes: int, shared: bool = False) -> bool:
        """Keep every image decoded and resized in memory (`datasets.decoded_cache`) when that
        takes at most `max_bytes`; `shared` for DataLoader workers. True when the cache is on."""
        if cache_bytes(len(self), self.input_size) > max_bytes:
            return False
        self.decoded_cache = DecodedImageCache(len(self), self.input_size, shared=shared)
        return True

    def _scan(self, what: str) -> tuple[list[str], list[int], list[tuple[str, str]]]:
        """Find the images with torchvision, decode each once, keep the usable ones."""
        ignored: list[str] = []

        def is_image(path: str) -> bool:
            relpath = Path(path).relative_to(self.root).as_posix()
            if is_hidden(relpath) or not path.lower().endswith(IMG_EXTENSIONS):
                ignored.append(relpath)
                return False
            return True

        links: list[tuple[str, str]] = []
        candidates = find_images(self.root, self.classes, self.class_to_idx, is_image, links)
        for relpath, reason in links:
            log.warning("Not following %s/%s: %s", self.root, relpath, reason)
        if ignored:
            log.info(
                "%s: ignored %d files that are not images by their extension (%s)", self.root, len(ignored), examples(ignored)
            )
        relpaths, targets, skipped = [], [], list(links)
        for path, target in candidates:
            relpath = Path(path).relative_to(self.root).as_posix()
            reason = check_image(Path(path), max_pixels=self.max_pixels)
            if reason is None:
                relpaths.append(relpath)
                targets.append(target)
            else:
                log.warning("Skipping %s: %s", Path(path), reason)
                skipped.append((relpath, reason))
        if skipped:
            log.warning("%s: skipped %d of %d images (see the warnings above)", self.root, len(skipped), len(candidates))
        if not relpaths:
            detail = f" All {len(skipped)} images were unusable, e.g. {skipped[0][0]}: {skipped[0][1]}." if skipped else ""
            raise DatasetError(f"The {what} {self.root} has no usable images.{detail} Image files end in {EXTENSIONS_TEXT}.")
        present = set(targets)
        empty = [c for i, c in enumerate(self.classes) if i not in present]
        if empty:
            raise DatasetError(
                f"In the {what} {self.root}, the class folders {examples(empty)} hold no "
                f"usable images (image files end in {EXTENSIONS_TEXT}; broken ones are "
                "skipped). Add images to them, or remove the folders."
            )
        return relpaths, targets, skipped

    def _check_mask_names(self) -> None:
        """Two images whose names differ only in suffix would share one mask file: refuse."""
        seen: dict[str, str] = {}
        for relpath in self.relpaths:
            other = seen.setdefault(_mask_key(relpath), relpath)
            if other != relpath:
                raise DatasetError(
                    f"The images {other} and {relpath} in {self.root} would share the mask "
                    f"file {_mask_key(relpath)}. Rename one of them."
                )

    # -- Dataset -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.relpaths)

    def __getitem__(self, index: int) -> Sample:
        """Sample with image 3 x S x S normalised, mask S x S in {-1, 0, +1} (S = input_size)."""
        size = (self.input_size, self.input_size)
        # A JPEG may be decoded at up to 1/8 scale while staying at least input_size on each side.
        if self.decoded_cache is None:
            picture = load_rgb(self.image_path(index), max_pixels=self.max_pixels, draft_size=size)
            image = self.transform(picture)
        else:
            image = self._cached_image(index, size)
        mask = None
        if self.masks is not None:
            mask = self.masks.load(self.relpaths[index], size)
        has_mask = mask is not None
        if mask is None:
            mask = torch.zeros(size, dtype=torch.float32)
        return Sample(image, self.targets[index], mask, has_mask, index)

    def _cached_image(self, index: int, size: tuple[int, int]) -> torch.Tensor:
        """The transform's result, with the resized uint8 pixels from (or into) the cache."""
        resize, _, normalize = self.transform.transforms
        pixels = self.decoded_cache.get(index)
        if pixels is None:
            picture = load_rgb(self.image_path(index), max_pixels=self.max_pixels, draft_size=size)
            pixels = transforms.functional.pil_to_tensor(resize(picture))
            self.decoded_cache.put(index, pixels)
        return normalize(pixels.float().div(255))  # what ToTensor does to 8-bit RGB

    # -- helpers for the app and the UI --------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> dict[str, int]:
        """Images per class, in label order (classes with none in this subset count 0)."""
        counts = np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=len(self.classes))
        return {name: int(counts[i]) for i, name in enumerate(self.classes)}

    def image_path(self, index: int) -> Path:
        """The file of image `index`."""
        return self.root / self.relpaths[index]

    def display_image(self, index: int, max_side: int | None = None) -> np.ndarray:
        """np.uint8 H x W x 3 RGB picture of image `index`, unnormalised.

        At its original size (upright per EXIF), or shrunk keeping the aspect ratio so the long
        side is at most `max_side`.
        """
        picture = load_rgb(self.image_path(index), max_pixels=self.max_pixels)
        if max_side is not None:
            if max_side <= 0:
                raise DatasetError(f"max_side must be positive; got {max_side}.")
            width, height = picture.size
            new_height, new_width = capped_size(height, width, max_side)
            if (new_height, new_width) != (height, width):
                picture = picture.resize((new_width, new_height), Image.Resampling.BILINEAR)
        return np.asarray(picture, dtype=np.uint8).copy()

    def index_of(self, relpath: str) -> int:
        """Position of image `relpath` in this data set; DatasetError if it is not in it."""
        if self._index_of is None:
            self._index_of = {r: i for i, r in enumerate(self.relpaths)}
        try:
            return self._index_of[relpath]
        except KeyError:
            raise DatasetError(
                f"The image {relpath} is not in this data set ({self.root}, {len(self)} images); was it moved or skipped?"
            ) from None

    def annotated_indices(self) -> list[int]:
        """Positions of the images that have a mask on disk (ascending)."""
        if self.masks is None:
            return []
        have_mask = set(self.masks.annotated())
        return [i for i, relpath in enumerate(self.relpaths) if relpath in have_mask]

    def subset(self, indices: Sequence[int]) -> ImageFolderData:
        """A data set of the images at `indices` (in that order); shares classes, root, masks."""
        indices = [int(i) for i in indices]
        for i in indices:
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} is out of range for {len(self)} images")
        part = copy.copy(self)
        part.relpaths = [self.relpaths[i] for i in indices]
        part.targets = [self.targets[i] for i in indices]
        part.skipped = list(self.skipped)
        part._index_of = None
        part.decoded_cache = None  # indexed by this data set's positions
        return part

    def __repr__(self) -> str:
        return (
            f"ImageFolderData({str(self.root)!r}, {len(self)} images, {self.num_classes} classes, input_size={self.input_size})"
        )
