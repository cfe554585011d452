"""The run's own events, trainer -> consumer: it started, a batch and an epoch finished, its
state changed, a checkpoint was saved, it finished or failed (part of `app.run.messages`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Tuple

from app.run.run_state import RunState


# ------------------------------------------------------------ events: trainer -> consumer
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
