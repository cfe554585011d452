"""The gallery's messages while the user paints (part of `app.run.messages`): list the training
images with the model's predictions, make chosen ones paintable (consumer -> trainer), and the
answers (trainer -> consumer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from app.run.round_messages import FeedbackItem


# ------------------------------------------------------------ events: trainer -> consumer
@dataclass(frozen=True)
class GalleryEntry:
    """One training image as the gallery lists it."""

    relpath: str
    true_label: str
    predicted_label: str  # the current model's prediction ("" when not predicted)
    confidence: float  # its softmax probability, [0, 1] (NaN when not predicted)


@dataclass(frozen=True)
class ImagesDescribed:
    """Answer to `DescribeImages`: the training images with the current model's predictions."""

    entries: Tuple[GalleryEntry, ...]
    n_train: int  # training images in all (entries may be capped)


@dataclass(frozen=True)
class ImagesPrepared:
    """Answer to `PrepareImages`: the images ready to paint (as a round's items are)."""

    items: Tuple[FeedbackItem, ...]
    missing: Tuple[str, ...] = ()  # relpaths that are not training images


# ---------------------------------------------------------- commands: consumer -> trainer
@dataclass(frozen=True)
class DescribeImages:
    """While painting: list the training images with predictions (`ImagesDescribed`)."""


@dataclass(frozen=True)
class PrepareImages:
    """While painting: make these images paintable (`ImagesPrepared`): the gallery's and the
    reasonability window's "paint these"."""

    relpaths: Tuple[str, ...]
