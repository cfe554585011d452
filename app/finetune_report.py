"""What a fine-tune round reports: the numbers a user (or a script) decides to commit on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict

# Why a fine-tune round stopped.
STOP_VAL_LOSS = "val_loss_rise"  # validation loss rose past the threshold: it started to forget
STOP_GUIDANCE = "guidance_drop"  # the guidance loss fell far enough: saliency moved
STOP_STEP_CAP = "step_cap"  # neither fired within max_steps
STOP_NON_FINITE = "non_finite"  # a loss became NaN/inf; the candidate is the last finite state
STOP_NOTHING_ANNOTATED = "nothing_annotated"  # no image had a mask; nothing to do
STOP_CANCELLED = "cancelled"  # the user or the trainer stopped the round

STOP_REASON_TEXT = {
    STOP_VAL_LOSS: "validation loss rose past the limit",
    STOP_GUIDANCE: "guidance loss fell past the target",
    STOP_STEP_CAP: "reached the step cap",
    STOP_NON_FINITE: "loss became non-finite (NaN/inf)",
    STOP_NOTHING_ANNOTATED: "no annotated images",
    STOP_CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class FinetuneReport:
    """Old vs new model after one fine-tune round. Shares are of saliency mass, in [0, 1]."""

    stop_reason: str  # one of the STOP_* constants
    steps: int  # optimiser steps taken
    n_annotated: int  # annotated images the round trained on
    val_loss_before: float
    val_loss_after: float
    val_accuracy_before: float  # in [0, 1]
    val_accuracy_after: float
    guidance_before: float  # guidance loss on the annotated images (L0)
    guidance_after: float
    red_share_before: float  # mean share of saliency on red (discourage) pixels
    red_share_after: float
    green_share_before: float  # mean share of saliency on green (encourage) pixels
    green_share_after: float
    seconds: float  # wall-clock time of the round

    @property
    def stop_text(self) -> str:
        return STOP_REASON_TEXT.get(self.stop_reason, self.stop_reason)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)
