"""The messages of a feedback round (part of `app.run.messages`): the images offered for
painting and GRADIA's matrix before them, the fine-tune round's progress and its candidate
(trainer -> consumer); painting done or cancelled, commit or reject, stop the round (consumer ->
trainer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

from app.engine.finetune_report import FinetuneReport

if TYPE_CHECKING:  # the real import pulls in torch; the messages stay light
    from app.explain.reasonability import ReasonabilityMatrix


# ------------------------------------------------------------ events: trainer -> consumer
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


# ---------------------------------------------------------- commands: consumer -> trainer
@dataclass(frozen=True)
class StartFinetune:
    """The user finished painting; masks are already saved in the mask store."""

    relpaths: Tuple[str, ...]  # images annotated in this round (the round uses all masks)
    max_steps: Optional[int] = None  # a shorter round than FinetuneConfig.max_steps (None: as configured)


@dataclass(frozen=True)
class SkipFeedback:
    """The user cancelled the brush window: resume training unchanged."""


@dataclass(frozen=True)
class StopRound:
    """End the fine-tune round now and show the candidate so far in the chooser (acted on at the
    next step: `Trainer.submit` sets an event). The run goes on after the decision."""


@dataclass(frozen=True)
class Commit:
    """Keep the fine-tuned candidate."""


@dataclass(frozen=True)
class Reject:
    """Discard the candidate; the weights stay exactly as before the round."""
