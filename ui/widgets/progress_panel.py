"""Progress of the epoch, of the whole run and of a fine-tune round, with time remaining.

`EtaEstimator` is pure (no Tk): it times consecutive `BatchFinished` events of one epoch (the
median of the recent ones, so a slow batch or a pause does not swing the estimate) and adds the
per-epoch overhead measured from `EpochFinished.seconds` (validation). Time spent paused or
painting is not counted. The run's time left is smoothed (`smoothed_run_remaining`): it counts
down with the clock and moves only part of the way to each new raw estimate, so a change of
pace (guided batches after a round cost 2-3x) turns into a glide over a dozen batches, not a
jump from 13:50 to 24:02. `StepTimer` does the same for the steps of a fine-tune round, which
report every step (`FinetuneStep`). `ProgressPanel` shows three bars with labels.
"""

from __future__ import annotations

import statistics
import time
import tkinter as tk
from collections import deque
from tkinter import ttk
from typing import Deque, Optional

from ui.helpers.wording import format_duration

BAR_STYLE = "Run.Horizontal.TProgressbar"
FINETUNE_BAR_STYLE = "Finetune.Horizontal.TProgressbar"
BAR_LENGTH = 160  # each bar's least width; the texts beside them wrap in the rest


SMOOTHING = 0.15  # share of the gap to a new raw estimate the shown run estimate closes per batch


class StepTimer:
    """Time left of a fine-tune round: the median of the recent step times x steps left.

    An upper bound: the round may stop earlier at a check."""

    def __init__(self, window: int = 20) -> None:
        self._durations: Deque[float] = deque(maxlen=window)
        self._last: Optional[tuple[int, float]] = None

    def step_done(self, step: int, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        if self._last is not None and step == self._last[0] + 1:
            self._durations.append(now - self._last[1])
        self._last = (step, now)

    @property
    def seconds_per_step(self) -> Optional[float]:
        """The median of the recent step times (None before two steps)."""
        return statistics.median(self._durations) if self._durations else None

    def remaining(self, step: int, max_steps: int) -> Optional[float]:
        per_step = self.seconds_per_step
        return None if per_step is None else per_step * max(0, max_steps - step)


class EtaEstimator:
    """Estimates the time left in the epoch and in the run from measured batch times."""

    def __init__(self, window: int = 50) -> None:
        # (smoothed run remaining, at time); the time is None while frozen (paused, painting)
        self._shown: Optional[tuple[float, Optional[float]]] = None
        self._durations: Deque[float] = deque(maxlen=window)
        self._last: Optional[tuple[int, int, float]] = None  # (epoch, batch, time) of the last batch
        self.epoch_overhead = 0.0  # seconds per epoch beyond the batches (validation, checkpoint)
        self.first_epoch = 1
        self.epochs = 1
        self.batches_per_epoch = 1
        self.epoch = 0
        self.batch = 0

    def start(self, first_epoch: int, epochs: int, batches_per_epoch: int) -> None:
        self.first_epoch, self.epochs = first_epoch, epochs
        self.batches_per_epoch = max(1, batches_per_epoch)
        self.epoch, self.batch = first_epoch, 0
        self._last = None

    def batch_done(self, epoch: int, batch: int, batches: int, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        if self._last is not None:
            last_epoch, last_batch, last_time = self._last
            if last_epoch == epoch and batch == last_batch + 1:
                self._durations.append(now - last_time)
        self._last = (epoch, batch, now)
        self.epoch, self.batch, self.batches_per_epoch = epoch, batch, max(1, batches)
        self._smooth(now)

    def _smooth(self, now: float) -> None:
        raw = self.run_remaining()
        if raw is None:
            return
        if self._shown is None:
            self._shown = (raw, now)
            return
        shown, at = self._shown
        # the clock ran on since the last estimate (not while paused or painting)
        predicted = shown if at is None else max(0.0, shown - (now - at))
        self._shown = (predicted + SMOOTHING * (raw - predicted), now)

    def smoothed_run_remaining(self, now: Optional[float] = None) -> Optional[float]:
        """The run's time left as shown: the smoothed estimate, counted down to `now`."""
        if self._shown is None:
            return self.run_remaining()
        shown, at = self._shown
        if at is None:
            return shown
        now = time.monotonic() if now is None else now
        return max(0.0, shown - max(0.0, now - at))

    def epoch_done(self, epoch: int, seconds: float) -> None:
        per_batch = self.seconds_per_batch
        if per_batch is not None and seconds > 0:
            self.epoch_overhead = max(0.0, seconds - per_batch * self.batches_per_epoch)
        self.epoch, self.batch = epoch + 1, 0
        self._last = None  # the next epoch's first batch follows validation/painting: not a batch time

    def pause(self) -> None:
        """Forget the running batch timer (the gap across a pause is not a batch time); the
        shown estimate stops counting down until the next batch."""
        self._last = None
        if self._shown is not None:
            self._shown = (self.smoothed_run_remaining(), None)

    @property
    def seconds_per_batch(self) -> Optional[float]:
        if not self._durations:
            return None
        return statistics.median(self._durations)

    def epoch_remaining(self) -> Optional[float]:
        per_batch = self.seconds_per_batch
        if per_batch is None:
            return None
        return (self.batches_per_epoch - self.batch) * per_batch + self.epoch_overhead

    def run_remaining(self) -> Optional[float]:
        this_epoch = self.epoch_remaining()
        if this_epoch is None:
            return None
        later_epochs = max(0, self.epochs - self.epoch)
        per_epoch = self.batches_per_epoch * (self.seconds_per_batch or 0.0) + self.epoch_overhead
        return this_epoch + later_epochs * per_epoch

    def shown_run_remaining(self, now: Optional[float] = None) -> Optional[float]:
        """The run's time left as the window shows it: the smoothed estimate, but never less than
        what the current epoch still needs, and in the last epoch exactly that (issue 21: "Run:
        0:52 left" beside "Epoch: 1:32 left" in the last epoch)."""
        this_epoch = self.epoch_remaining()
        if this_epoch is None:
            return self.smoothed_run_remaining(now)
        if self.epoch >= self.epochs:
            return this_epoch
        smoothed = self.smoothed_run_remaining(now)
        return this_epoch if smoothed is None else max(smoothed, this_epoch)

    def run_fraction(self) -> float:
        """Share of the run's batches done, in [0, 1]."""
        total_epochs = max(1, self.epochs - self.first_epoch + 1)
        done = (self.epoch - self.first_epoch) * self.batches_per_epoch + self.batch
        return min(1.0, max(0.0, done / (total_epochs * self.batches_per_epoch)))


class ProgressPanel(ttk.Frame):
    """Bars for the epoch, the run and the fine-tune round, each with a text label."""

    def __init__(self, master: tk.Misc) -> None:
        super().__init__(master)
        self.eta = EtaEstimator()
        style = ttk.Style(self)
        # a coloured fill: in some themes (clam) the default fill is hard to tell from the trough
        style.configure(BAR_STYLE, background="#3b7dd8", troughcolor="#e4e4e4")
        style.configure(FINETUNE_BAR_STYLE, background="#2ca02c", troughcolor="#e4e4e4")
        self.epoch_bar = ttk.Progressbar(self, maximum=1.0, length=BAR_LENGTH, style=BAR_STYLE)
        self.run_bar = ttk.Progressbar(self, maximum=1.0, length=BAR_LENGTH, style=BAR_STYLE)
        self.finetune_bar = ttk.Progressbar(self, maximum=1.0, length=BAR_LENGTH, style=FINETUNE_BAR_STYLE)
        self.epoch_text = tk.StringVar(value="Epoch: not started")
        self.run_text = tk.StringVar(value="Run: not started")
        self.finetune_text = tk.StringVar(value="Fine-tune: none yet")
        rows = ((self.epoch_bar, self.epoch_text), (self.run_bar, self.run_text), (self.finetune_bar, self.finetune_text))
        self.labels = []
        for row, (bar, var) in enumerate(rows):
            # the bar left, its text right of it: three rows, compact enough for 720 px screens
            bar.grid(row=row, column=0, sticky="ew", pady=2)
            label = ttk.Label(self, textvariable=var, anchor="w", justify="left")
            label.grid(row=row, column=1, sticky="w", padx=(8, 0))
            self.labels.append(label)
        self.columnconfigure(0, weight=1, minsize=BAR_LENGTH)
        self.columnconfigure(1, weight=2)
        self.bind("<Configure>", self._wrap)
        self.step_timer = StepTimer()
        self._last_check = ""

    def _wrap(self, event: tk.Event) -> None:
        """The texts wrap in what the bars leave: a long one (the round's stop reason, "measuring
        the model before the round") was cut off at the window's edge at 1280 px."""
        width = max(120, event.width - BAR_LENGTH - 12)
        for label in self.labels:
            label.configure(wraplength=width)

    def reset(self) -> None:
        self.eta = EtaEstimator()
        self.finetune_bar.stop()
        self.finetune_bar.configure(mode="determinate")
        for bar in (self.epoch_bar, self.run_bar, self.finetune_bar):
            bar.configure(value=0.0)
        self.epoch_text.set("Epoch: not started")
        self.run_text.set("Run: not started")
        self.finetune_text.set("Fine-tune: none yet")

    def run_started(self, first_epoch: int, epochs: int, batches_per_epoch: int) -> None:
        self.eta.start(first_epoch, epochs, batches_per_epoch)
        self.epoch_bar.configure(value=0.0)
        self.run_bar.configure(value=0.0)
        self.epoch_text.set(f"Epoch {first_epoch}/{epochs}: starting")
        self.run_text.set(f"Run: epochs {first_epoch}-{epochs}")

    def batch_done(self, epoch: int, batch: int, batches: int, epochs: int) -> None:
        self.eta.batch_done(epoch, batch, batches)
        self.eta.epochs = epochs
        self.epoch_bar.configure(value=batch / max(1, batches))
        self.run_bar.configure(value=self.eta.run_fraction())
        self.epoch_text.set(
            f"Epoch {epoch}/{epochs}: batch {batch}/{batches}, {format_duration(self.eta.epoch_remaining())} left"
        )
        self.run_text.set(f"Run: {self.eta.run_fraction():.0%}, {format_duration(self.eta.shown_run_remaining())} left")

    def epoch_done(self, epoch: int, epochs: int, seconds: float) -> None:
        self.eta.epoch_done(epoch, seconds)
        self.epoch_bar.configure(value=1.0)
        self.run_bar.configure(value=self.eta.run_fraction())
        self.epoch_text.set(f"Epoch {epoch}/{epochs} done in {format_duration(seconds)}")
        if epoch >= epochs:
            self.run_text.set("Run: 100%")
        else:
            self.run_text.set(f"Run: {self.eta.run_fraction():.0%}, {format_duration(self.eta.shown_run_remaining())} left")

    def run_stopped(self) -> None:
        """Stop: the bars stay where the run got to, but no time left is promised any more
        (after Stop the lines still said "0:15 left")."""
        eta = self.eta
        if eta.batch <= 0 and eta.run_fraction() <= 0:
            return  # stopped before its first batch: the texts say "starting" / "not started"
        if eta.batch < eta.batches_per_epoch:
            self.epoch_text.set(f"Epoch {eta.epoch}/{eta.epochs}: stopped at batch {eta.batch}/{eta.batches_per_epoch}")
        self.run_text.set(f"Run: stopped at {eta.run_fraction():.0%}")

    def _show_finetune(self, round_number: int, step: int, max_steps: int) -> None:
        left = self.step_timer.remaining(step, max_steps)
        text = f"Fine-tune round {round_number}: step {step}/{max_steps}"
        text += f", at most {format_duration(left)} left" if left is not None else ""
        if self._last_check:
            text += f"\n{self._last_check}"
        self.finetune_text.set(text)
        self._show_run_during_round(left)

    def _show_run_during_round(self, round_left: Optional[float]) -> None:
        """While a round runs the training waits: the run line says so and adds the round's
        time, instead of "Run: 67 %, 0:03 left" during a round of hours."""
        training_left = self.eta.shown_run_remaining()
        text = f"Run: {self.eta.run_fraction():.0%}; training waits for this round"
        if round_left is not None and training_left is not None:
            text += f", then {format_duration(training_left)} (at most {format_duration(round_left + training_left)} in all)"
        elif training_left is not None:
            text += f", then {format_duration(training_left)}"
        self.run_text.set(text)

    def finetune_step(self, round_number: int, step: int, max_steps: int) -> None:
        """Every optimizer step: the bar moves and the time left (an upper bound) updates."""
        if str(self.finetune_bar.cget("mode")) != "determinate":
            self.finetune_bar.stop()
            self.finetune_bar.configure(mode="determinate")
        self.step_timer.step_done(step)
        self.finetune_bar.configure(value=step / max(1, max_steps))
        self._show_finetune(round_number, step, max_steps)

    def finetune_progress(self, round_number: int, step: int, max_steps: int, guidance: float, val_loss: float) -> None:
        """A stop check (every few steps): its numbers join the step line."""
        self.eta.pause()
        self._last_check = f"check at step {step}: guidance {guidance:.3g}, val loss {val_loss:.3g}"
        self._show_finetune(round_number, step, max_steps)

    def finetune_started(self, round_number: int, max_steps: int) -> None:
        """Before the first step the round measures the model (validation, guidance, shares):
        an indeterminate bar says it is busy, not hung."""
        self.eta.pause()
        self.step_timer = StepTimer()
        self._last_check = ""
        self.finetune_bar.configure(mode="indeterminate", value=0.0)
        self.finetune_bar.start(50)
        self.finetune_text.set(
            f"Fine-tune round {round_number}: measuring the model before the round (then up to {max_steps} steps)..."
        )
        self._show_run_during_round(None)

    def finetune_finished(self, round_number: int, steps: int, stop_text: str) -> None:
        self.finetune_bar.stop()
        self.finetune_bar.configure(mode="determinate")
        self.finetune_bar.configure(value=1.0)
        self.finetune_text.set(f"Fine-tune round {round_number}: {steps} steps, {stop_text}")
        left = self.eta.shown_run_remaining()
        self.run_text.set(f"Run: {self.eta.run_fraction():.0%}, {format_duration(left)} of training left after the round")
