"""Typed messages between the training engine and whoever drives it (the Tk app, the CLI).

Events flow from the trainer thread to the consumer through a callback (the app puts them on a
`queue.Queue` and drains it with `after()`); commands flow back through `Trainer.submit`.
All are frozen dataclasses holding plain values and numpy arrays -- never a widget, never a
tensor that the training thread may still be writing to -- so the consumer never runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional, Tuple

import numpy as np

from app.engine.finetune_report import FinetuneReport
from app.run.run_state import RunState

if TYPE_CHECKING:  # the real import pulls in torch; the messages module stays light
    from app.explain.reasonability import ReasonabilityMatrix


# ---------------------------------------------------------------- events: trainer -> consumer
@dataclass(frozen=True)
class RunStarted:
    device: str  # human-readable, e.g. "CPU" or "CUDA: NVIDIA H100"
    classes: Tuple[str, ...]
    n_train: int
    n_val: int
    first_epoch: int  # 1-based epoch about to run (> 1 when resuming)
    epochs: int  # last epoch of the run
    batches_per_epoch: int
    skipped: Tuple[Tuple[str, str], ...] = ()  # (relpath, reason) of unreadable images
    class_counts: Tuple[int, ...] = ()  # training images per class, in `classes` order


@dataclass(frozen=True)
class BatchFinished:
    epoch: int
    batch: int  # 1-based
    batches: int
    loss: float  # total loss of the batch (CE + lambda x guidance)
    accuracy: float  # batch accuracy in [0, 1]
    n_annotated: int  # annotated images in the batch
    ce: float = float("nan")  # the cross-entropy part of `loss` (what the plots draw)


@dataclass(frozen=True)
class EpochFinished:
    epoch: int
    epochs: int
    train: Mapping[str, float]  # train_one_epoch's dict: loss, ce, guidance, accuracy, ...
    val: Mapping[str, Any]  # evaluate's dict: loss, accuracy, per_class_accuracy, ...
    seconds: float  # wall-clock time of the epoch including validation


@dataclass(frozen=True)
class FeedbackItem:
    """One image offered for painting."""

    relpath: str
    image: np.ndarray  # H x W x 3 uint8 RGB, the original image (long side capped for display)
    saliency: np.ndarray  # h x w float32 in [0, 1] at the model's input size
    true_label: str
    predicted_label: str
    confidence: float  # softmax probability of the predicted class, [0, 1]
    mask: Optional[np.ndarray] = None  # H x W int8 in {-1, 0, 1}: the mask painted earlier, if any
    reason: str = ""  # why it was chosen, e.g. "entropy 1.92" or "misclassified"


@dataclass(frozen=True)
class FeedbackNeeded:
    round: int  # 1-based feedback round
    epoch: int  # epoch just finished
    items: Tuple[FeedbackItem, ...]
    strategy: str


@dataclass(frozen=True)
class FinetuneStarted:
    round: int
    n_annotated: int
    max_steps: int


@dataclass(frozen=True)
class FinetuneProgress:
    round: int
    step: int
    max_steps: int
    guidance: float  # guidance loss on the annotated images at the last check
    val_loss: float  # validation loss at the last check


@dataclass(frozen=True)
class FinetuneStep:
    """After every optimizer step of a fine-tune round (FinetuneProgress comes only at the
    stop checks, every few steps), so the progress bar moves and the time left is known."""

    round: int
    step: int
    max_steps: int


@dataclass(frozen=True)
class Comparison:
    """Old vs new model on one annotated image, for the chooser."""

    relpath: str
    image: np.ndarray  # H x W x 3 uint8 RGB
    mask: np.ndarray  # H x W int8 in {-1, 0, 1}
    saliency_old: np.ndarray  # h x w float32 in [0, 1]
    saliency_new: np.ndarray  # h x w float32 in [0, 1]
    true_label: str
    predicted_old: str
    predicted_new: str
    confidence_old: float
    confidence_new: float


@dataclass(frozen=True)
class FinetuneDone:
    round: int
    report: FinetuneReport
    comparisons: Tuple[Comparison, ...]


@dataclass(frozen=True)
class RoundDecided:
    round: int
    epoch: int
    committed: bool  # False: rejected, or cancelled before fine-tuning
    finetuned: bool  # False when the user cancelled the brush window


@dataclass(frozen=True)
class StateChanged:
    state: RunState  # any but the UI-only ones (app.run.run_state.UI_ONLY_STATES)


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    epoch: int


@dataclass(frozen=True)
class TrainingFinished:
    epoch: int  # last epoch completed
    stopped: bool  # True when stopped by the user before the last epoch
    history: Tuple[Mapping[str, Any], ...] = field(default=())  # one dict per epoch


@dataclass(frozen=True)
class TrainingFailed:
    message: str  # one line for a dialog
    details: str = ""  # traceback, for the log pane
    user_error: bool = False  # True: a mistake in the input, not a bug


@dataclass(frozen=True)
class ReasonabilityReady:
    """GRADIA's matrix of the current model on a pool of training images, before a round.

    Emitted right before `FeedbackNeeded`. `matrix.members` holds at most
    `app.run.feedback_round.REASONABILITY_MEMBERS` relpaths per cell (most unreasonable first);
    `matrix.counts` counts the whole pool.
    """

    round: int
    epoch: int
    matrix: "ReasonabilityMatrix"  # app.explain.reasonability.ReasonabilityMatrix (plain dicts, tuples)
    n_train: int  # training images in all (the pool is a seeded random subset when smaller)


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


# --------------------------------------------------------------- commands: consumer -> trainer
@dataclass(frozen=True)
class StartFinetune:
    """The user finished painting; masks are already saved in the mask store."""

    relpaths: Tuple[str, ...]  # images annotated in this round (the round uses all masks)
    max_steps: Optional[int] = None  # a shorter round than FinetuneConfig.max_steps (None: as configured)


@dataclass(frozen=True)
class SkipFeedback:
    """The user cancelled the brush window: resume training unchanged."""


@dataclass(frozen=True)
class Commit:
    """Keep the fine-tuned candidate."""


@dataclass(frozen=True)
class Reject:
    """Discard the candidate; the weights stay exactly as before the round."""


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
class StopRound:
    """End the fine-tune round now and show the candidate so far in the chooser (acted on at the
    next step: `Trainer.submit` sets an event). The run goes on after the decision."""


@dataclass(frozen=True)
class MarkNotThis:
    """While painting: `region` of `relpath` was wrongly found ("not this"); the next content
    preview learns from it. Saved in the run's negatives folder (RunPaths.negatives_dir)."""

    relpath: str
    region: np.ndarray  # h x w bool, any size (resized to the image's display size)


@dataclass(frozen=True)
class DescribeImages:
    """While painting: list the training images with predictions (`ImagesDescribed`)."""


@dataclass(frozen=True)
class PrepareImages:
    """While painting: make these images paintable (`ImagesPrepared`): the gallery's and the
    reasonability window's "paint these"."""

    relpaths: Tuple[str, ...]


EVENT_TYPES = (
    RunStarted,
    BatchFinished,
    EpochFinished,
    FeedbackNeeded,
    FinetuneStarted,
    FinetuneProgress,
    FinetuneStep,
    FinetuneDone,
    RoundDecided,
    StateChanged,
    CheckpointSaved,
    TrainingFinished,
    TrainingFailed,
    ReasonabilityReady,
    PropagationPreview,
    PropagationApplied,
    PropagationFailed,
    PropagationProgress,
    PreviewPageItems,
    ImagesDescribed,
    ImagesPrepared,
)
COMMAND_TYPES = (
    StartFinetune,
    SkipFeedback,
    Commit,
    Reject,
    PreviewPropagation,
    ApplyPropagation,
    MarkNotThis,
    DescribeImages,
    PrepareImages,
    CancelPropagation,
    PreviewPage,
    StopRound,
)
