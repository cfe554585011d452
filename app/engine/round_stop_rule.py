"""When a fine-tune round stops (`FinetuneConfig.stop_rule`), checked every few steps.

"plateau" (the default, with a shortcut-broken validation): run while shortcut-broken accuracy
reaches new bests, stop `patience` checks after the last and keep the best state; without a
shortcut-broken validation it acts as "saliency". "saliency": stop when the share of saliency on
red has fallen by `red_share_drop` or shortcut-broken accuracy fell by more than
`broken_accuracy_drop` (and by more than chance). "thesis": stop when the guidance loss fell by
`guidance_drop`. Every rule also stops when the watched validation loss rose `val_loss_rise` x
over the round's start (forgetting).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional

from app.engine.config import FinetuneConfig
from app.engine.finetune_report import STOP_BROKEN_WORSE, STOP_GUIDANCE, STOP_PLATEAU, STOP_RED_SHARE, STOP_VAL_LOSS
from app.engine.round_measures import Measures, paired_change


def broken_fell(before: Dict[str, Any], now: Dict[str, Any], by: float) -> bool:
    """Shortcut-broken accuracy fell by more than `by` and, where the per-image outcomes are
    known, by more than chance: a validation split of a few hundred images swings by a couple of
    points between checks, which must not end a round."""
    paired = paired_change(before, now)
    if paired is None:
        return now["accuracy"] < before["accuracy"] - by
    return paired.fell(by)


class RoundStopRule:
    """The stop checks of one round, from the model's measures before it."""

    def __init__(self, config: FinetuneConfig, before: Measures):
        rule = config.stop_rule
        if rule == "plateau" and before.broken is None:
            rule = "saliency"  # nothing to climb on: stop on the red share, as "saliency" does
        self.config, self.before, self.rule = config, before, rule
        self.by_saliency = rule in ("saliency", "plateau")
        # The forgetting check: on the shortcut-broken validation when there is one, since a round
        # that removes the shortcut raises the plain validation loss (the split carries the shortcut).
        self.watch_broken = self.by_saliency and before.broken is not None
        self.target_guidance = before.guidance - config.guidance_drop * abs(before.guidance)
        self.target_red = (1.0 - config.red_share_drop) * before.red_share
        self.val_limit = math.inf  # set by `start`
        # "plateau": the best shortcut-broken accuracy so far, the check and the state that reached it.
        self.best_accuracy = before.broken["accuracy"] if before.broken is not None else -math.inf
        self.best_step, self.stale = 0, 0
        self.best_state: Optional[Dict[str, Any]] = None

    @property
    def keeps_best(self) -> bool:
        """True when the candidate is the best state seen ("plateau"), not the last."""
        return self.rule == "plateau"

    @property
    def kept_step(self) -> Optional[int]:
        """The step whose state the candidate is ("plateau"; 0 = the round's start), else None."""
        return self.best_step if self.keeps_best else None

    def start(self, start_loss: float, state: Dict[str, Any]) -> None:
        """The watched loss as the round starts (the limit is `val_loss_rise` x it) and the start's
        state, the best until a check beats it."""
        self.val_limit = self.config.val_loss_rise * start_loss
        self.best_state = state

    def check(
        self,
        step: int,
        val_loss: float,
        guidance: float,
        broken: Optional[Dict[str, Any]],
        red_share: Callable[[], float],
        state: Dict[str, Any],
    ) -> Optional[str]:
        """The STOP_* reason to stop after this check, or None to go on. `val_loss`: the watched
        loss; `broken`: the shortcut-broken evaluation when watched; `red_share()`: measured only
        when the rule needs it; `state`: the candidate's (checked finite) state now."""
        if val_loss >= self.val_limit:
            return STOP_VAL_LOSS
        if self.rule == "plateau":
            if broken["accuracy"] > self.best_accuracy:
                self.best_accuracy, self.best_state, self.best_step, self.stale = broken["accuracy"], state, step, 0
                return None
            self.stale += 1
            return STOP_PLATEAU if self.stale >= self.config.patience else None
        if self.by_saliency:
            if broken is not None and broken_fell(self.before.broken, broken, self.config.broken_accuracy_drop):
                return STOP_BROKEN_WORSE
            return STOP_RED_SHARE if red_share() <= self.target_red else None
        return STOP_GUIDANCE if guidance <= self.target_guidance else None
