"""Live training curves embedded in Tk: loss and accuracy per epoch, with feedback-round marks.

Two matplotlib axes side by side (a `Figure` drawn by `FigureCanvasTkAgg`, never pyplot, so no
global figure state and no second GUI toolkit): loss on the left, accuracy on the right, each
with train and validation per epoch and a faint running train curve per batch, so the plot moves
during the first epoch. Every feedback round is a vertical line at the epoch it followed: solid
green = committed, dashed red = rejected, dotted grey = painting skipped.

Drawing a figure costs tens of milliseconds, so batch updates redraw at most every
`min_redraw_s`; epoch and round updates redraw at the next idle moment.
"""

from __future__ import annotations

import math
import time
import tkinter as tk
from dataclasses import dataclass
from tkinter import ttk
from typing import Any, Iterable, List, Mapping, Optional

from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
from matplotlib.figure import Figure

TRAIN_COLOUR = "#1f77b4"
VAL_COLOUR = "#ff7f0e"
COMMIT_COLOUR = "#2ca02c"
REJECT_COLOUR = "#d62728"
SKIP_COLOUR = "#888888"


@dataclass(frozen=True)
class RoundMark:
    """A feedback round drawn on the plots."""

    round: int
    epoch: int  # the epoch after which the round happened (x position)
    committed: bool
    finetuned: bool

    @property
    def style(self) -> tuple[str, str, str]:
        """(colour, line style, label) for this decision."""
        if self.committed:
            return COMMIT_COLOUR, "-", "committed"
        if self.finetuned:
            return REJECT_COLOUR, "--", "rejected"
        return SKIP_COLOUR, ":", "skipped"


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


class PlotsPanel(ttk.Frame):
    """Loss and accuracy curves. Data is kept in plain lists (attributes) so tests can read it."""

    def __init__(self, master: tk.Misc, *, min_redraw_s: float = 1.0, dpi: int = 90) -> None:
        super().__init__(master)
        self.min_redraw_s = min_redraw_s
        self.epochs: List[int] = []
        self.train_loss: List[float] = []
        self.val_loss: List[float] = []
        self.train_accuracy: List[float] = []
        self.val_accuracy: List[float] = []
        self.batch_x: List[float] = []  # fractional epoch: epoch - 1 + batch / batches
        self.batch_loss: List[float] = []
        self.batch_accuracy: List[float] = []
        self.rounds: List[RoundMark] = []
        self.draw_count = 0  # full redraws done (for tests and the latency bench)
        self._last_draw = 0.0
        self._pending: Optional[str] = None

        self.figure = Figure(figsize=(8.0, 3.2), dpi=dpi, layout="constrained")
        self.loss_axes = self.figure.add_subplot(1, 2, 1)
        self.accuracy_axes = self.figure.add_subplot(1, 2, 2)
        self.canvas = FigureCanvasTkAgg(self.figure, master=self)
        self.canvas.get_tk_widget().pack(fill="both", expand=True)
        self._render()
        self.canvas.draw_idle()

    # ------------------------------------------------------------------ data in
    def clear(self) -> None:
        for series in (self.epochs, self.train_loss, self.val_loss, self.train_accuracy,
                       self.val_accuracy, self.batch_x, self.batch_loss, self.batch_accuracy,
                       self.rounds):
            series.clear()
        self.redraw()

    def add_batch(self, epoch: int, batch: int, batches: int, loss: float, accuracy: float) -> None:
        """A finished batch: extends the faint running curves (redraw throttled)."""
        self.batch_x.append(epoch - 1 + batch / max(1, batches))
        self.batch_loss.append(_number(loss))
        self.batch_accuracy.append(_number(accuracy))
        self.redraw(throttled=True)

    def add_epoch(self, epoch: int, train: Mapping[str, Any], val: Mapping[str, Any]) -> None:
        """A finished epoch: `train`/`val` are the loops' dicts (keys `loss`, `accuracy`)."""
        if epoch in self.epochs:  # a resumed run repeats nothing, but be safe: replace
            index = self.epochs.index(epoch)
            for series in (self.epochs, self.train_loss, self.val_loss, self.train_accuracy,
                           self.val_accuracy):
                del series[index]
        self.epochs.append(epoch)
        self.train_loss.append(_number(train.get("loss")))
        self.val_loss.append(_number(val.get("loss")))
        self.train_accuracy.append(_number(train.get("accuracy")))
        self.val_accuracy.append(_number(val.get("accuracy")))
        self.redraw()

    def add_round(self, round_number: int, epoch: int, committed: bool, finetuned: bool) -> None:
        self.rounds = [r for r in self.rounds if r.round != round_number]
        self.rounds.append(RoundMark(round_number, epoch, committed, finetuned))
        self.redraw()

    def set_history(self, epochs: Iterable[Mapping[str, Any]],
                    rounds: Iterable[Mapping[str, Any]] = ()) -> None:
        """Redraw from a stored run: `Session.epoch_history()` and `Session.history()` rows.

        Epoch rows are the checkpoint's flat records (`{"epoch": 3, "train_loss": ...,
        "train_accuracy": ..., "val_loss": ..., "val_accuracy": ...}`) or nested
        (`{"epoch": 3, "train": {...}, "val": {...}}`); round rows have `round`, `epoch`,
        `decision` ("commit" | "reject" | "cancelled" | ...) or `committed`/`finetuned`.
        """
        for series in (self.epochs, self.train_loss, self.val_loss, self.train_accuracy,
                       self.val_accuracy, self.batch_x, self.batch_loss, self.batch_accuracy,
                       self.rounds):
            series.clear()
        for row in epochs:
            if "epoch" not in row:
                continue
            self.epochs.append(int(row["epoch"]))
            train = row.get("train") or {"loss": row.get("train_loss"),
                                          "accuracy": row.get("train_accuracy")}
            val = row.get("val") or {"loss": row.get("val_loss"),
                                      "accuracy": row.get("val_accuracy")}
            self.train_loss.append(_number(train.get("loss")))
            self.val_loss.append(_number(val.get("loss")))
            self.train_accuracy.append(_number(train.get("accuracy")))
            self.val_accuracy.append(_number(val.get("accuracy")))
        for index, row in enumerate(rounds, start=1):
            mark = round_mark_from_record(row, default_round=index)
            if mark is not None:
                self.rounds.append(mark)
        self.redraw()

    # ------------------------------------------------------------------ drawing
    def redraw(self, throttled: bool = False) -> None:
        """Redraw now-ish; with `throttled`, at most once per `min_redraw_s`."""
        if self._pending is not None:
            if throttled:
                return  # a redraw is already scheduled
            self.after_cancel(self._pending)
            self._pending = None
        wait = self.min_redraw_s - (time.monotonic() - self._last_draw) if throttled else 0.0
        delay_ms = max(1, int(wait * 1000)) if wait > 0 else 1
        self._pending = self.after(delay_ms, self._draw_now)

    def flush(self) -> None:
        """Draw pending changes synchronously (tests, screenshots)."""
        if self._pending is not None:
            self.after_cancel(self._pending)
            self._pending = None
        self._draw_now()
        self.canvas.draw()

    def _draw_now(self) -> None:
        self._pending = None
        self._last_draw = time.monotonic()
        self._render()
        self.canvas.draw_idle()
        self.draw_count += 1

    def _render(self) -> None:
        panels = ((self.loss_axes, "Loss", self.train_loss, self.val_loss, self.batch_loss),
                  (self.accuracy_axes, "Accuracy", self.train_accuracy, self.val_accuracy,
                   self.batch_accuracy))
        last_x = max([*self.epochs, *self.batch_x, *[r.epoch for r in self.rounds], 1])
        for axes, title, train, val, batch in panels:
            axes.clear()
            axes.set_title(title, fontsize=11)
            axes.set_xlabel("epoch")
            axes.grid(True, alpha=0.3)
            if self.batch_x:
                axes.plot(self.batch_x, batch, color=TRAIN_COLOUR, alpha=0.25, linewidth=1,
                          label="train (per batch)")
            if self.epochs:
                axes.plot(self.epochs, train, color=TRAIN_COLOUR, marker="o", markersize=4,
                          label="train")
                axes.plot(self.epochs, val, color=VAL_COLOUR, marker="s", markersize=4,
                          label="validation")
            seen = set()
            for mark in self.rounds:
                colour, style, label = mark.style
                axes.axvline(mark.epoch, color=colour, linestyle=style, linewidth=1.5,
                             label=None if label in seen else f"round {label}")
                seen.add(label)
                axes.annotate(f"R{mark.round}", (mark.epoch, 1.0), xycoords=("data", "axes fraction"),
                              xytext=(2, -10), textcoords="offset points", color=colour, fontsize=8)
            axes.set_xlim(0, max(2, last_x) + 0.3)
            if title == "Accuracy":
                axes.set_ylim(0.0, 1.02)
            elif any(math.isfinite(v) for v in [*train, *val, *batch]):
                axes.set_ylim(bottom=0.0)
            if self.epochs or self.batch_x or self.rounds:
                axes.legend(loc="lower left" if title == "Accuracy" else "upper right", fontsize=8)

    def destroy(self) -> None:
        if self._pending is not None:
            try:
                self.after_cancel(self._pending)
            except tk.TclError:
                pass
            self._pending = None
        idle = getattr(self.canvas, "_idle_draw_id", None)
        if idle:
            try:
                self.canvas.get_tk_widget().after_cancel(idle)
            except tk.TclError:
                pass
            self.canvas._idle_draw_id = None
        super().destroy()


def round_mark_from_record(row: Mapping[str, Any], default_round: int = 0) -> Optional[RoundMark]:
    """A `RoundMark` from a `history.jsonl` row, or None when it has no epoch.

    Accepts `decision` in {"commit", "committed", "reject", "rejected", "skip", "skipped",
    "cancelled"} or explicit `committed` / `finetuned` booleans.
    """
    if row.get("epoch") is None:
        return None
    decision = str(row.get("decision", "")).lower()
    committed = bool(row.get("committed", decision in ("commit", "committed")))
    finetuned = bool(row.get("finetuned", decision not in ("skip", "skipped", "cancelled", "")
                          or committed))
    return RoundMark(int(row.get("round", default_round)), int(row["epoch"]), committed, finetuned)
