"""Live training curves embedded in Tk: loss and accuracy per epoch, with feedback-round marks.

Two matplotlib axes sharing the epoch axis (a `Figure` drawn by `FigureCanvasTkAgg`, never
pyplot, so no global figure state): loss on top, accuracy below, each with train and validation
per epoch and a faint running train curve per batch, so the plot moves during the first epoch.
Every feedback round is a vertical line at the epoch it followed: solid green = committed,
dashed red = rejected, dotted grey = painting skipped.

Why blitting: a full Agg redraw of this figure costs 100-300 ms of the Tk thread (text layout
dominates), long enough to make the window stutter while it trains. So the curves are
*animated* artists: a full redraw (axes, ticks, legend, round marks) happens only when the axis
limits or the rounds change (the x range is the whole run, set at its start; the loss range
only grows), and a new batch or epoch just restores the cached background and draws the three
lines of each axes (a few ms). Updates are also coalesced: at most one pending.
"""

from __future__ import annotations

import math
import time
import tkinter as tk
from dataclasses import dataclass
from tkinter import ttk
from typing import Any, Dict, Iterable, List, Mapping, Optional

from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

TRAIN_COLOUR = "#1f77b4"
VAL_COLOUR = "#ff7f0e"
COMMIT_COLOUR = "#2ca02c"
REJECT_COLOUR = "#d62728"
SKIP_COLOUR = "#888888"
DEFAULT_LOSS_TOP = 2.5  # CE of a 10-class guess is ln 10 = 2.3; the range grows when exceeded


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
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(values: Iterable[float]) -> List[float]:
    return [v for v in values if math.isfinite(v)]


def _typical(values: List[float]) -> List[float]:
    """The 90th percentile of the finite values (as a one-element list; empty when none)."""
    finite = sorted(_finite(values))
    if not finite:
        return []
    return [finite[min(len(finite) - 1, int(0.9 * len(finite)))]]


class PlotsPanel(ttk.Frame):
    """Loss and accuracy curves. Data is kept in plain lists (attributes) so tests can read it."""

    def __init__(self, master: tk.Misc, *, min_update_s: float = 0.25, dpi: int = 90) -> None:
        super().__init__(master)
        self.min_update_s = min_update_s
        self.epochs: List[int] = []
        self.train_loss: List[float] = []
        self.val_loss: List[float] = []
        self.train_accuracy: List[float] = []
        self.val_accuracy: List[float] = []
        self.batch_x: List[float] = []  # fractional epoch: epoch - 1 + batch / batches
        self.batch_loss: List[float] = []
        self.batch_accuracy: List[float] = []
        self.rounds: List[RoundMark] = []
        self.run_epochs = 0  # last epoch of the run: the x range
        self.loss_top = DEFAULT_LOSS_TOP
        self.full_draws = 0  # full figure redraws (tests and the latency bench read these)
        self.blits = 0  # cheap line-only updates
        self._pending: Optional[str] = None
        self._pending_full = False
        self._last_update = 0.0
        self._backgrounds: Dict[Any, Any] = {}
        self._shown_limits: tuple = ()

        self.figure = Figure(figsize=(8.0, 5.0), dpi=dpi)
        self.figure.subplots_adjust(left=0.08, right=0.98, bottom=0.09, top=0.95, hspace=0.28)
        self.loss_axes = self.figure.add_subplot(2, 1, 1)
        self.accuracy_axes = self.figure.add_subplot(2, 1, 2, sharex=self.loss_axes)
        self.lines: Dict[str, Line2D] = {}
        for key, axes, title in (("loss", self.loss_axes, "Loss"),
                                 ("accuracy", self.accuracy_axes, "Accuracy")):
            axes.set_ylabel(title.lower())
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
            axes.grid(True, alpha=0.3)
            self.lines[f"batch_{key}"], = axes.plot([], [], color=TRAIN_COLOUR, alpha=0.3,
                                                    linewidth=1, label="train (per batch)",
                                                    animated=True)
            self.lines[f"train_{key}"], = axes.plot([], [], color=TRAIN_COLOUR, marker="o",
                                                    markersize=4, label="train", animated=True)
            self.lines[f"val_{key}"], = axes.plot([], [], color=VAL_COLOUR, marker="s",
                                                  markersize=4, label="validation", animated=True)
        self._round_artists: List[Any] = []
        self.canvas = FigureCanvasTkAgg(self.figure, master=self)
        # matplotlib's Tk backend scales the figure by screen DPI / 96 on Linux when mapped,
        # but then renders wider than the widget (the right edge gets cut off on a 100 DPI
        # screen); Tk pixels are physical pixels, so keep the ratio at 1.
        self.canvas.get_tk_widget().unbind("<Map>")
        self.canvas.get_tk_widget().pack(fill="both", expand=True)
        self._draw_cid = self.canvas.mpl_connect("draw_event", self._on_full_draw)
        self._apply_static()
        self.canvas.draw_idle()

    # ------------------------------------------------------------------ data in
    def clear(self) -> None:
        for series in (self.epochs, self.train_loss, self.val_loss, self.train_accuracy,
                       self.val_accuracy, self.batch_x, self.batch_loss, self.batch_accuracy,
                       self.rounds):
            series.clear()
        self.run_epochs = 0
        self.loss_top = DEFAULT_LOSS_TOP
        self.update_plot(full=True)

    def set_run_range(self, last_epoch: int) -> None:
        """The run goes up to `last_epoch`: fix the x range so it never changes mid-run."""
        if last_epoch != self.run_epochs:
            self.run_epochs = int(last_epoch)
            self.update_plot(full=True)

    def add_batch(self, epoch: int, batch: int, batches: int, loss: float, accuracy: float) -> None:
        """A finished batch: extends the faint running curves."""
        self.batch_x.append(epoch - 1 + batch / max(1, batches))
        self.batch_loss.append(_number(loss))
        self.batch_accuracy.append(_number(accuracy))
        self.update_plot()

    def add_epoch(self, epoch: int, train: Mapping[str, Any], val: Mapping[str, Any]) -> None:
        """A finished epoch: `train`/`val` are the loops' dicts (keys `loss`, `accuracy`)."""
        if epoch in self.epochs:  # replace, never duplicate, an epoch
            index = self.epochs.index(epoch)
            for series in (self.epochs, self.train_loss, self.val_loss, self.train_accuracy,
                           self.val_accuracy):
                del series[index]
        self.epochs.append(epoch)
        self.train_loss.append(_number(train.get("loss")))
        self.val_loss.append(_number(val.get("loss")))
        self.train_accuracy.append(_number(train.get("accuracy")))
        self.val_accuracy.append(_number(val.get("accuracy")))
        self.update_plot()

    def add_round(self, round_number: int, epoch: int, committed: bool, finetuned: bool) -> None:
        self.rounds = [r for r in self.rounds if r.round != round_number]
        self.rounds.append(RoundMark(round_number, epoch, committed, finetuned))
        self.update_plot(full=True)

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
        self.loss_top = DEFAULT_LOSS_TOP
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
        self.run_epochs = max([0, *self.epochs])
        self.update_plot(full=True)

    # ------------------------------------------------------------------ drawing
    def _limits(self) -> tuple:
        """(x_max, loss_top): when these change the static part must be redrawn."""
        x_max = max([2, self.run_epochs, *self.epochs, *[math.ceil(x) for x in self.batch_x],
                     *[r.epoch for r in self.rounds]])
        # The range follows the epoch curves; a single spiky batch may leave the top of the
        # plot rather than squash every curve to the bottom.
        losses = _finite([*self.train_loss, *self.val_loss, *_typical(self.batch_loss)])
        top = self.loss_top
        if losses and max(losses) > top:
            top = max(losses) * 1.25  # grow with headroom so it rarely has to grow again
        self.loss_top = top
        return (x_max, round(top, 6))

    def update_plot(self, full: bool = False) -> None:
        """Show the current data soon: at most one pending update, at most every
        `min_update_s`; `full` forces a redraw of the static part too."""
        self._pending_full = self._pending_full or full
        if self._pending is not None:
            return
        wait = self._last_update + self.min_update_s - time.monotonic()
        self._pending = self.after(max(1, int(wait * 1000)) if wait > 0 else 1, self._update_now)

    def flush(self) -> None:
        """Draw everything now, synchronously (tests, screenshots)."""
        if self._pending is not None:
            self.after_cancel(self._pending)
            self._pending = None
        self._pending_full = True
        self._update_now()
        self.canvas.draw()

    def _update_now(self) -> None:
        self._pending = None
        self._last_update = time.monotonic()
        full = self._pending_full or self._limits() != self._shown_limits or not self._backgrounds
        self._pending_full = False
        self._set_line_data()
        if full:
            self._apply_static()
            self.canvas.draw_idle()  # _on_full_draw captures backgrounds and draws the lines
        else:
            self._blit()

    def _set_line_data(self) -> None:
        data = {
            "batch_loss": (self.batch_x, self.batch_loss),
            "train_loss": (self.epochs, self.train_loss),
            "val_loss": (self.epochs, self.val_loss),
            "batch_accuracy": (self.batch_x, self.batch_accuracy),
            "train_accuracy": (self.epochs, self.train_accuracy),
            "val_accuracy": (self.epochs, self.val_accuracy),
        }
        for name, (xs, ys) in data.items():
            self.lines[name].set_data(list(xs), list(ys))

    def _apply_static(self) -> None:
        """Limits, round marks and legends: the part drawn only by a full redraw."""
        x_max, loss_top = self._limits()
        self._shown_limits = (x_max, loss_top)
        for artist in self._round_artists:
            artist.remove()
        self._round_artists = []
        for axes in (self.loss_axes, self.accuracy_axes):
            axes.set_xlim(0, x_max + 0.3)
            handles = [self.lines["batch_" + ("loss" if axes is self.loss_axes else "accuracy")],
                       self.lines["train_" + ("loss" if axes is self.loss_axes else "accuracy")],
                       self.lines["val_" + ("loss" if axes is self.loss_axes else "accuracy")]]
            seen = set()
            for mark in self.rounds:
                colour, style, label = mark.style
                line = axes.axvline(mark.epoch, color=colour, linestyle=style, linewidth=1.5)
                text = axes.annotate(f"R{mark.round}", (mark.epoch, 1.0),
                                     xycoords=("data", "axes fraction"), xytext=(2, -10),
                                     textcoords="offset points", color=colour, fontsize=8)
                self._round_artists += [line, text]
                if label not in seen:
                    seen.add(label)
                    handles.append(Line2D([], [], color=colour, linestyle=style,
                                          label=f"round {label}"))
            legend = axes.legend(handles=handles, fontsize=8,
                                 loc="upper right" if axes is self.loss_axes else "lower right",
                                 ncol=2 if self.rounds else 1)
            self._round_artists.append(legend)
        self.loss_axes.set_ylim(0.0, loss_top)
        self.accuracy_axes.set_xlabel("epoch")
        self.loss_axes.tick_params(labelbottom=False)
        self.accuracy_axes.set_ylim(0.0, 1.02)

    def _animated(self, axes) -> List[Line2D]:
        key = "loss" if axes is self.loss_axes else "accuracy"
        return [self.lines[f"{kind}_{key}"] for kind in ("batch", "train", "val")]

    def _on_full_draw(self, _event) -> None:
        """After every full draw (ours, a resize, ...): cache the backgrounds, draw the lines."""
        self.full_draws += 1
        self._backgrounds = {axes: self.canvas.copy_from_bbox(axes.bbox)
                             for axes in (self.loss_axes, self.accuracy_axes)}
        for axes in (self.loss_axes, self.accuracy_axes):
            for line in self._animated(axes):
                axes.draw_artist(line)

    def _blit(self) -> None:
        self.blits += 1
        for axes in (self.loss_axes, self.accuracy_axes):
            background = self._backgrounds.get(axes)
            if background is None:
                continue
            self.canvas.restore_region(background)
            for line in self._animated(axes):
                axes.draw_artist(line)
            self.canvas.blit(axes.bbox)

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
        self.canvas.mpl_disconnect(self._draw_cid)
        super().destroy()


def round_mark_from_record(row: Mapping[str, Any], default_round: int = 0) -> Optional[RoundMark]:
    """A `RoundMark` from a `history.jsonl` row, or None when it has no epoch.

    `decision` "commit"/"committed" -> committed; "cancelled"/"skip"/"skipped" -> not
    fine-tuned; anything else ("reject", "stopped") -> fine-tuned but rejected. Explicit
    `committed` / `finetuned` booleans win.
    """
    if row.get("epoch") is None:
        return None
    decision = str(row.get("decision", "")).lower()
    committed = bool(row.get("committed", decision in ("commit", "committed")))
    finetuned = bool(row.get("finetuned", committed or decision not in (
        "skip", "skipped", "cancelled", "")))
    return RoundMark(int(row.get("round", default_round)), int(row["epoch"]), committed, finetuned)
