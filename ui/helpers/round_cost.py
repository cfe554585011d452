"""What a fine-tune round will cost on this device, said before it starts (pure, no Tk).

A resnet18 round on a CPU can take hours (150 steps of guided batches); the user must learn that
before pressing Done, not 26 minutes into it, and be offered a shorter round. The estimate of one
step is, best first: the median step time of the last round of this run (measured); else the
training's seconds per batch, scaled to a step's rows and by GUIDED_STEP_FACTOR (a guided step
costs 2.1-3.7x a plain step of the same rows, `loss.guided`); else unknown. An upper bound: a
round usually stops at a check before its last step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .wording import format_duration

GUIDED_STEP_FACTOR = 3.0  # a guided step / a plain training batch of the same rows
ROWS_PAINTED_PER_STEP = 32  # app.engine.finetune.CHUNK: painted rows per step (fewer when fewer are painted)
SHORT_ROUND_STEPS = 30  # the shorter round offered
LONG_ROUND_S = 10 * 60  # from this estimate on, the shorter round is chosen for the user


def step_seconds(
    measured_step: Optional[float],
    seconds_per_batch: Optional[float],
    batch_size: int,
    replay_batch: int,
    guided_batches: bool = False,
) -> Optional[float]:
    """Seconds per fine-tune step: the measured one, else from a training batch's time.
    `guided_batches`: the training batches were guided already (no extra factor)."""
    if measured_step is not None and measured_step > 0:
        return measured_step
    if seconds_per_batch is None or seconds_per_batch <= 0 or batch_size <= 0:
        return None
    rows = ROWS_PAINTED_PER_STEP + max(0, replay_batch)
    factor = 1.0 if guided_batches else GUIDED_STEP_FACTOR
    return seconds_per_batch * rows / batch_size * factor


@dataclass(frozen=True)
class RoundCost:
    """The round's length choices and what each is expected to cost."""

    max_steps: int  # the configured round
    short_steps: int  # the shorter round offered (== max_steps when the round is short already)
    step_s: Optional[float]  # estimated seconds per step (None: not measured yet)
    device: str  # "CPU", "CUDA: NVIDIA H100", ...

    def seconds(self, steps: int) -> Optional[float]:
        return None if self.step_s is None else self.step_s * steps

    @property
    def suggest_short(self) -> bool:
        """True when the full round would take long enough that the short one should be the default."""
        full = self.seconds(self.max_steps)
        return self.short_steps < self.max_steps and full is not None and full >= LONG_ROUND_S

    def choice_text(self, steps: int) -> str:
        """'up to 150 steps, at most about 2:10:00' for a radio button."""
        took = self.seconds(steps)
        text = f"up to {steps} steps"
        return text + (f", at most about {format_duration(took)}" if took is not None else "")

    def summary(self) -> str:
        """The line above the choices."""
        if self.step_s is None:
            return f"Done starts a fine-tune round on {self.device}: its cost is not measured yet."
        return (
            f"Done starts a fine-tune round on {self.device}: about {self.step_s:.1f} s per step "
            f"(rounds often stop earlier, at a check)."
        )


def round_cost(max_steps: int, step_s: Optional[float], device: str, short_steps: int = SHORT_ROUND_STEPS) -> RoundCost:
    return RoundCost(max_steps, min(short_steps, max_steps), step_s, device or "this device")
