"""Typed messages between the training engine and whoever drives it (the Tk app, the CLI).

Events flow from the trainer thread to the consumer through a callback (the app puts them on a
`queue.Queue` and drains it with `after()`); commands flow back through `Trainer.submit`.
All are frozen dataclasses holding plain values and numpy arrays -- never a widget, never a
tensor that the training thread may still be writing to -- so the consumer never runs the model.

This module is the protocol's one face (`from app.run import messages as msg`); the messages
live by concept: the run's own events (`run_events`), a feedback round's (`round_messages`),
propagation's (`propagation_messages`) and the gallery's (`gallery_messages`).
"""

from __future__ import annotations

from app.run.gallery_messages import (
    DescribeImages,
    GalleryEntry,
    ImagesDescribed,
    ImagesPrepared,
    PrepareImages,
)
from app.run.propagation_messages import (
    ApplyPropagation,
    CancelPropagation,
    MarkNotThis,
    PreviewItem,
    PreviewPage,
    PreviewPageItems,
    PreviewPropagation,
    PropagationApplied,
    PropagationFailed,
    PropagationPreview,
    PropagationProgress,
)
from app.run.round_messages import (
    Commit,
    Comparison,
    FeedbackItem,
    FeedbackNeeded,
    FinetuneDone,
    FinetuneProgress,
    FinetuneStarted,
    FinetuneStep,
    ReasonabilityReady,
    Reject,
    RoundDecided,
    SkipFeedback,
    StartFinetune,
    StopRound,
)
from app.run.run_events import (
    BatchFinished,
    CheckpointSaved,
    EpochFinished,
    RunStarted,
    StateChanged,
    TrainingFailed,
    TrainingFinished,
)

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

__all__ = [
    "ApplyPropagation",
    "BatchFinished",
    "COMMAND_TYPES",
    "CancelPropagation",
    "CheckpointSaved",
    "Commit",
    "Comparison",
    "DescribeImages",
    "EVENT_TYPES",
    "EpochFinished",
    "FeedbackItem",
    "FeedbackNeeded",
    "FinetuneDone",
    "FinetuneProgress",
    "FinetuneStarted",
    "FinetuneStep",
    "GalleryEntry",
    "ImagesDescribed",
    "ImagesPrepared",
    "MarkNotThis",
    "PrepareImages",
    "PreviewItem",
    "PreviewPage",
    "PreviewPageItems",
    "PreviewPropagation",
    "PropagationApplied",
    "PropagationFailed",
    "PropagationPreview",
    "PropagationProgress",
    "ReasonabilityReady",
    "Reject",
    "RoundDecided",
    "RunStarted",
    "SkipFeedback",
    "StartFinetune",
    "StateChanged",
    "StopRound",
    "TrainingFailed",
    "TrainingFinished",
]
