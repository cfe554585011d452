"""The messages of mask propagation while the user paints (part of `app.run.messages`):
preview, apply, cancel, more pages of finds, "not this" corrections (consumer -> trainer) and
their answers (trainer -> consumer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np


# ------------------------------------------------------------ events: trainer -> consumer
@dataclass(frozen=True)
class PreviewItem:
    """One image of a content-propagation preview: where the painted content was found."""

    relpath: str
    thumbnail: np.ndarray  # h x w x 3 uint8 RGB, long side at most app.run.display_items.PREVIEW_SIDE
    region: np.ndarray  # h x w bool at the thumbnail's size: the found content
    confidence: float  # in [0, 1], the found region's mean probability


@dataclass(frozen=True)
class PropagationPreview:
    """Answer to `PreviewPropagation`: the images a propagation would write; nothing written."""

    sources: Tuple[str, ...]  # as the request named them (how the asker recognises its answer)
    scope: str  # "content" | "all" | "class" | "similar"
    count: int  # images that would get a propagated mask
    relpaths: Tuple[str, ...]  # those images, best first for "content" (by confidence), else sorted
    skipped_hand_painted: Tuple[str, ...] = ()  # selected, but they keep their painted mask
    # "content": the first page of finds, best first, with thumbnails (at most PREVIEW_ITEMS);
    # `PreviewPage` fetches the others
    items: Tuple[PreviewItem, ...] = ()
    examined: int = 0  # images looked at
    threshold: float = 0.0  # "content": the locator's calibrated probability threshold
    plan_id: int = 0  # names this plan for `ApplyPropagation.plan_id` / `PreviewPage` (0: none kept)
    learned_from: Tuple[str, ...] = ()  # "content": the hand-painted images the locator learnt from
    corrections: int = 0  # "content": "not this" corrections the locator learnt from


@dataclass(frozen=True)
class PropagationProgress:
    """A preview or apply under way: `done` of `total` images (the bar and Cancel show meanwhile)."""

    sources: Tuple[str, ...]  # as the request named them
    scope: str
    stage: str  # "finding" (looking through the images) | "writing" (writing the masks)
    done: int
    total: int


@dataclass(frozen=True)
class PreviewPageItems:
    """Answer to `PreviewPage`: thumbnails of finds `start`.. of a kept content plan, best first."""

    plan_id: int
    start: int  # index of the first item in the plan's ranking (0-based)
    items: Tuple[PreviewItem, ...]
    count: int  # finds in the plan (the pages' total)


@dataclass(frozen=True)
class PropagationApplied:
    """Answer to `ApplyPropagation`: the masks are written (marked source=propagated)."""

    sources: Tuple[str, ...]
    scope: str
    written: int  # masks written (new or replaced)
    skipped_hand_painted: int  # selected images that kept their own painted mask
    relpaths: Tuple[str, ...] = ()  # the images that got a propagated mask
    removed: int = 0  # earlier propagated masks of these sources that no longer apply
    searched: bool = False  # True: no reviewed plan was kept, so the images were searched again


@dataclass(frozen=True)
class PropagationFailed:
    """A preview or apply could not be done; the round goes on (still waiting for paint)."""

    sources: Tuple[str, ...]
    scope: str
    message: str  # one line for the user
    details: str = ""  # traceback when it is a bug, not a mistake in the input
    user_error: bool = True
    cancelled: bool = False  # the user pressed Cancel (not an error)


# ---------------------------------------------------------- commands: consumer -> trainer
@dataclass(frozen=True)
class PreviewPropagation:
    """While painting: which images would the red of `sources` go to? (`PropagationPreview`)"""

    sources: Tuple[str, ...]  # relpaths whose masks are already saved in the mask store
    scope: str  # "content" | "all" | "class" | "similar" (app.explain.propagation.SCOPES)
    excluded: Tuple[str, ...] = ()  # images the user dropped from the plan


@dataclass(frozen=True)
class ApplyPropagation:
    """While painting: write the propagated masks (`PropagationApplied`). With the `plan_id` of
    the preview the user reviewed, that plan is written as it was shown (less `excluded`),
    without searching the images again; without one (0, or a plan no longer kept) it is planned
    afresh."""

    sources: Tuple[str, ...]
    scope: str
    excluded: Tuple[str, ...] = ()  # images the user dropped from the plan
    plan_id: int = 0  # PropagationPreview.plan_id of the reviewed plan


@dataclass(frozen=True)
class CancelPropagation:
    """Stop the preview or apply under way (acted on at once, between images: `Trainer.submit`
    sets an event rather than queueing it). Answered by `PropagationFailed(cancelled=True)`."""


@dataclass(frozen=True)
class PreviewPage:
    """While painting: thumbnails of finds `start`..`start + PREVIEW_ITEMS` of a kept content
    plan (`PreviewPageItems`), so every find can be looked at, a page at a time."""

    plan_id: int
    start: int


@dataclass(frozen=True)
class MarkNotThis:
    """While painting: `region` of `relpath` was wrongly found ("not this"); the next content
    preview learns from it. Saved in the run's negatives folder (RunPaths.negatives_dir)."""

    relpath: str
    region: np.ndarray  # h x w bool, any size (resized to the image's display size)
