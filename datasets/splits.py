"""Training and validation data: a separate validation folder, or a seeded stratified split.

With a validation folder, both folders must have exactly the same class sub-folders (a model's
labels are the training classes, so a mismatch would silently mislabel the validation images).
Without one, `val_fraction` of every class is held out, chosen with a seeded generator, so the
same folder and seed always give the same split.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from .errors import DatasetError
from .image_folder import ImageFolderData
from .image_loading import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)


class DataSplits(NamedTuple):
    """The training and validation parts of the data."""

    train: ImageFolderData
    val: ImageFolderData


def stratified_split(
    targets: Sequence[int], classes: Sequence[str], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(train indices, val indices), both ascending; about val_fraction of each class in val.

    Every class keeps at least one image on each side, so each needs at least 2 images.
    Raises DatasetError when a class has fewer, or val_fraction is not in (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"The validation fraction must be between 0 and 1 (e.g. 0.2); got {val_fraction}.")
    targets = np.asarray(targets, dtype=np.int64)
    counts = np.bincount(targets, minlength=len(classes))
    too_few = [f"{classes[c]} ({counts[c]})" for c in range(len(classes)) if counts[c] < 2]
    if too_few:
        raise DatasetError(
            f"To hold out validation images, every class needs at least 2 images; these have "
            f"fewer: {', '.join(too_few)}. Add images, or give a separate validation folder."
        )
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in range(len(classes)):
        members = rng.permutation(np.flatnonzero(targets == label))
        n_val = min(max(int(round(len(members) * val_fraction)), 1), len(members) - 1)
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return sorted(train), sorted(val)


def load_splits(
    train_dir: str | os.PathLike,
    val_dir: str | os.PathLike | None = None,
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    masks_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> DataSplits:
    """Load the training folder and its validation part (see the module docstring).

    The masks (`masks_dir`, relpaths relative to `train_dir`) belong to the training folder: in
    a split both parts share them, a separate validation folder gets none (its relpaths would
    collide with the training ones). Files skipped while scanning are listed in
    `train.skipped` (and, for a separate folder, `val.skipped`), each once.
    """
    if val_dir is not None and os.path.realpath(Path(val_dir).expanduser()) == os.path.realpath(Path(train_dir).expanduser()):
        raise DatasetError(  # validating on the training images overstates accuracy (docs/data_checks.md)
            f"The validation folder {val_dir} is the training folder: validation would measure the images the model "
            "learns from. Give a separate folder, or leave the validation folder out for a held-out split."
        )
    train = ImageFolderData(train_dir, input_size, mean, std, masks_dir=masks_dir, max_pixels=max_pixels, what="training folder")
    if val_dir is not None:
        val = ImageFolderData(
            val_dir, input_size, mean, std, classes=train.classes, max_pixels=max_pixels, what="validation folder"
        )
        log.info("Loaded %d training and %d validation images, %d classes", len(train), len(val), train.num_classes)
        return DataSplits(train, val)
    train_indices, val_indices = stratified_split(train.targets, train.classes, val_fraction, seed)
    whole = train
    train, val = whole.subset(train_indices), whole.subset(val_indices)
    val.skipped = []  # reported once, on train
    log.info(
        "Split %s (seed %d): %d training, %d validation images, %d classes",
        whole.root,
        seed,
        len(train),
        len(val),
        train.num_classes,
    )
    return DataSplits(train, val)
