"""What a fine-tune round reports: the numbers a user (or a script) decides to commit on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

from app.engine.accuracy_change import AccuracyChange

# Why a fine-tune round stopped.
STOP_VAL_LOSS = "val_loss_rise"  # validation loss rose past the threshold: it started to forget
STOP_GUIDANCE = "guidance_drop"  # the guidance loss fell far enough: saliency moved
STOP_STEP_CAP = "step_cap"  # neither fired within max_steps
STOP_NON_FINITE = "non_finite"  # a loss became NaN/inf; the candidate is the last finite state
STOP_NOTHING_ANNOTATED = "nothing_annotated"  # no image had a mask; nothing to do
STOP_CANCELLED = "cancelled"  # the user or the trainer stopped the round
STOP_RED_SHARE = "red_share_drop"  # the share of saliency on red fell far enough: it looks elsewhere
STOP_BROKEN_WORSE = "broken_accuracy_drop"  # it got worse on the shortcut-broken validation
STOP_PLATEAU = "broken_plateau"  # shortcut-broken accuracy stopped rising (FinetuneConfig.patience checks)

# The verdict on a round, from the shortcut-broken validation when there is one.
VERDICT_BETTER = "better"
VERDICT_WORSE = "worse"
VERDICT_UNCLEAR = "unclear"
# Changes of shortcut-broken accuracy within this count as no change; beyond it the change must
# also be beyond sampling noise (app.engine.accuracy_change) where the per-image counts are known.
BROKEN_NOISE = 0.01

STOP_REASON_TEXT = {
    STOP_VAL_LOSS: "validation loss rose past the limit",
    STOP_GUIDANCE: "guidance loss fell past the target",
    STOP_STEP_CAP: "reached the step cap",
    STOP_NON_FINITE: "loss became non-finite (NaN/inf)",
    STOP_NOTHING_ANNOTATED: "no annotated images",
    STOP_CANCELLED: "cancelled",
    STOP_RED_SHARE: "saliency on red fell past the target",
    STOP_BROKEN_WORSE: "accuracy fell on the shortcut-broken validation",
    STOP_PLATEAU: "accuracy on the shortcut-broken validation stopped rising",
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
    # Accuracy on the shortcut-broken validation (the found red content filled from its
    # surround, `app.explain.shortcut_broken`), in [0, 1]; None when nothing red was painted.
    broken_accuracy_before: Optional[float] = None
    broken_accuracy_after: Optional[float] = None
    broken_found: int = 0  # validation images where the painted content was found
    # Shortcut-broken validation images the new model gets right and the old one wrong (gained),
    # and the other way round (lost); None in reports from before they were counted.
    broken_gained: Optional[int] = None
    broken_lost: Optional[int] = None
    broken_images: int = 0  # shortcut-broken validation images compared (0: not counted)
    # Accuracy on the user's shortcut-free test folder (the settings' Test folder), in [0, 1];
    # None without one. Shown beside the others; never used to stop or judge the round, so the
    # test folder stays a test (deciding on it would fit the round to it).
    test_accuracy_before: Optional[float] = None
    test_accuracy_after: Optional[float] = None
    # Stop rule "plateau": the step whose state the candidate is (its best shortcut-broken
    # accuracy; 0 = no step beat the start); None for the other rules.
    kept_step: Optional[int] = None

    @property
    def stop_text(self) -> str:
        """Why the round stopped and, when it kept an earlier state than its last, which."""
        text = STOP_REASON_TEXT.get(self.stop_reason, self.stop_reason)
        if self.kept_step is not None and self.kept_step < self.steps:
            kept = (
                "the model before the round with its head cooled (the same predictions, softer confidences, "
                "so that guided training can move it)"
                if self.kept_step == 0
                else f"the state of step {self.kept_step}"
            )
            text += f"; the candidate is {kept}, its best on the shortcut-broken validation"
        return text

    @property
    def verdict(self) -> str:
        """better / worse / unclear: shortcut-broken accuracy up or down by more than
        BROKEN_NOISE and, where the per-image counts are known, by more than chance (a paired
        test, `app.engine.accuracy_change`), and saliency on red down for "better"; without a
        shortcut-broken validation, the red share alone can only say "unclear" or "worse" (it rose)."""
        red_down = self.red_share_after < self.red_share_before
        if self.broken_accuracy_before is None or self.broken_accuracy_after is None:
            return VERDICT_UNCLEAR if red_down or self.n_annotated == 0 else VERDICT_WORSE
        paired = self.broken_change
        if paired is not None:
            worse, better = paired.fell(BROKEN_NOISE), paired.rose(BROKEN_NOISE)
        else:  # an older report: the accuracies alone
            change = self.broken_accuracy_after - self.broken_accuracy_before
            worse, better = change < -BROKEN_NOISE, change > BROKEN_NOISE
        if worse:
            return VERDICT_WORSE
        if better and red_down:
            return VERDICT_BETTER
        return VERDICT_UNCLEAR

    @property
    def broken_change(self) -> Optional[AccuracyChange]:
        """The paired change on the shortcut-broken validation, where its counts are known."""
        if self.broken_gained is None or self.broken_lost is None or self.broken_images <= 0:
            return None
        return AccuracyChange(self.broken_gained, self.broken_lost, self.broken_images)

    @property
    def broken_within_noise(self) -> bool:
        """True when the shortcut-broken change is known per image and is within sampling noise
        (`AccuracyChange.beyond_noise`): the verdict's "within noise", which the chooser leaves
        uncoloured. False when there are no per-image counts to judge by."""
        paired = self.broken_change
        return paired is not None and not paired.beyond_noise()

    @property
    def verdict_text(self) -> str:
        """One line for the chooser and the CLI report."""
        red = f"saliency on red {100 * self.red_share_before:.1f} % -> {100 * self.red_share_after:.1f} %"
        if self.broken_accuracy_before is None or self.broken_accuracy_after is None:
            broken = "no shortcut-broken validation (nothing painted red)"
        else:
            broken = (
                f"shortcut-broken validation {100 * self.broken_accuracy_before:.1f} % -> "
                f"{100 * self.broken_accuracy_after:.1f} %"
            )
            paired = self.broken_change
            if paired is not None:
                broken += f" ({paired.text()}{', within noise' if self.broken_within_noise else ''})"
        head = {VERDICT_BETTER: "Better", VERDICT_WORSE: "WORSE", VERDICT_UNCLEAR: "Unclear"}[self.verdict]
        if self.kept_step == 0:  # plainly: the round found nothing better than where it started
            head = "No change (no step beat the start; the guided epochs go on from it)"
        return f"{head}: {broken}; {red}"

    def to_dict(self) -> Dict[str, Any]:
        return {**dataclasses.asdict(self), "verdict": self.verdict}
