"""Live training curves embedded in Tk: loss and accuracy per epoch, with feedback-round marks.

Two matplotlib axes sharing the epoch axis (a `Figure` drawn by `FigureCanvasTkAgg`, never
pyplot, so no global figure state): loss on top, accuracy below. What each shows:
- train: the cross-entropy (per epoch, and faint per batch), never CE + lambda x penalty: after
  a commit the total jumps (3.01 against a CE of 1.87) and reads as divergence;
- penalty: lambda x guidance per epoch (dashed), on its own line, when there is any;
- validation per epoch, and "val, shortcut broken" whenever the validation dict carries
  `broken_accuracy` / `broken_loss` (the painted content removed from the validation images);
- "test, shortcut-free" whenever it carries `test_accuracy` / `test_loss` (the optional test
  folder of the settings: what the user really wants to go up);
- at each committed round, the fine-tuned model's validation point (a star at the round's
  epoch), so the curve's jump has its cause on the plot.
Every feedback round is a vertical line at the epoch it followed: solid green = committed,
dashed red = rejected, dotted grey = painting skipped, named R1, R2... once, above the top axes
(inside, the label sat on the round's star). Legends sit outside the axes, right of them, so
they never cover the curves or those labels. The loss range follows the
typical values (`loss_range`): one validation loss of 61 no longer flattens every other curve;
it is drawn at the top edge as a triangle with its value written beside it.

Why blitting: a full Agg redraw of this figure costs 100-300 ms of the Tk thread (text layout
dominates), long enough to make the window stutter while it trains. So the curves are
*animated* artists: a full redraw (axes, ticks, legend, round marks) happens only when the axis
limits or the rounds change (the x range is the whole run, set at its start; the loss range
only grows), and a new batch or epoch just restores the cached background and draws the
lines of each axes (a few ms). Updates are also coalesced: at most one pending.

The series and the rules read from them (the loss range, values above it, legend entries, a
stored round's mark) are `ui.widgets.plot_data.PlotData`, pure; this module draws them.
"""

from __future__ import annotations

import math
import time
import tkinter as tk
from tkinter import ttk
from typing import Any, Dict, List, Optional

from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .plot_data import (
    BROKEN_COLOUR,
    PENALTY_COLOUR,
    TEST_COLOUR,
    TRAIN_COLOUR,
    VAL_COLOUR,
    PlotData,
    RoundMark,
    finite_values,
    loss_range,
    round_mark_from_record,
)

__all__ = ["PlotsPanel", "RoundMark", "loss_range", "round_mark_from_record"]


class PlotsPanel(PlotData, ttk.Frame):
    """Loss and accuracy curves. Data is kept in plain lists (attributes) so tests can read it."""

    def __init__(self, master: tk.Misc, *, min_update_s: float = 0.25, dpi: int = 90) -> None:
        super().__init__(master)
        self.min_update_s = min_update_s
        self._init_data()  # the series (ui.widgets.plot_data)
        self.full_draws = 0  # full figure redraws (tests and the latency bench read these)
        self.blits = 0  # cheap line-only updates
        self._pending: Optional[str] = None
        self._pending_full = False
        self._last_update = 0.0
        self._backgrounds: Dict[Any, Any] = {}
        self._shown_limits: tuple = ()
        self._shown_legend: tuple = ()  # _legend_key() of the legends on screen

        # constrained layout: the legends right of the axes and the epoch label always fit,
        # however short the window (a 1280 x 720 screen leaves the plots about 350 px)
        self.figure = Figure(figsize=(8.0, 5.0), dpi=dpi, layout="constrained")
        self.loss_axes = self.figure.add_subplot(2, 1, 1)
        self.accuracy_axes = self.figure.add_subplot(2, 1, 2, sharex=self.loss_axes)
        self.lines: Dict[str, Line2D] = {}
        for key, axes, title in (("loss", self.loss_axes, "Loss"), ("accuracy", self.accuracy_axes, "Accuracy")):
            axes.set_ylabel(title.lower())
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
            axes.grid(True, alpha=0.3)
            (self.lines[f"batch_{key}"],) = axes.plot(
                [], [], color=TRAIN_COLOUR, alpha=0.3, linewidth=1, label="train (per batch)", animated=True
            )
            (self.lines[f"train_{key}"],) = axes.plot(
                [], [], color=TRAIN_COLOUR, marker="o", markersize=4, label="train", animated=True
            )
            (self.lines[f"val_{key}"],) = axes.plot(
                [], [], color=VAL_COLOUR, marker="s", markersize=4, label="validation", animated=True
            )
            (self.lines[f"broken_{key}"],) = axes.plot(
                [], [], color=BROKEN_COLOUR, marker="^", markersize=4, label="val, shortcut broken", animated=True
            )
            (self.lines[f"test_{key}"],) = axes.plot(
                [], [], color=TEST_COLOUR, marker="v", markersize=4, label="test, shortcut-free", animated=True
            )
        self.lines["train_loss"].set_label("train CE")
        self.lines["batch_loss"].set_label("train CE (per batch)")
        (self.lines["penalty"],) = self.loss_axes.plot(
            [],
            [],
            color=PENALTY_COLOUR,
            marker="d",
            markersize=4,
            linestyle="--",
            label="penalty (\u03bb \u00d7 guidance)",
            animated=True,
        )
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
        # A series that appears (the test line's first point, the shortcut-broken validation or
        # the penalty after a round) needs its legend entry now: a legend change is a full redraw.
        full = (
            self._pending_full
            or self._limits() != self._shown_limits
            or self._legend_key() != self._shown_legend
            or not self._backgrounds
        )
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
            "broken_loss": (self.epochs, self.broken_loss),
            "broken_accuracy": (self.epochs, self.broken_accuracy),
            "test_loss": (self.epochs, self.test_loss),
            "test_accuracy": (self.epochs, self.test_accuracy),
            # no penalty line while there is no penalty (nothing painted yet)
            "penalty": (self.epochs, self.penalty) if any(v > 0 for v in finite_values(self.penalty)) else ([], []),
        }
        for name, (xs, ys) in data.items():
            self.lines[name].set_data(list(xs), list(ys))

    def _apply_static(self) -> None:
        """Limits, round marks and legends: the part drawn only by a full redraw."""
        limits = self._limits()
        x_max, loss_top, outliers = limits
        self._shown_limits = limits
        self._shown_legend = self._legend_key()
        for artist in self._round_artists:
            artist.remove()
        self._round_artists = []
        for epoch, value, colour in outliers:  # off the top: a triangle at the edge, the value
            (marker,) = self.loss_axes.plot(
                [epoch], [loss_top], marker="^", color=colour, markersize=7, clip_on=False, linestyle="none"
            )
            text = self.loss_axes.annotate(
                f"{value:.3g}", (epoch, loss_top), xytext=(5, -9), textcoords="offset points", color=colour, fontsize=8
            )
            self._round_artists += [marker, text]
        for axes in (self.loss_axes, self.accuracy_axes):
            key = "loss" if axes is self.loss_axes else "accuracy"
            axes.set_xlim(0, x_max + 0.3)
            handles = [self.lines[f"batch_{key}"], self.lines[f"train_{key}"], self.lines[f"val_{key}"]]
            broken = self.broken_loss if key == "loss" else self.broken_accuracy
            if finite_values(broken):
                handles.append(self.lines[f"broken_{key}"])
            if finite_values(self.test_loss if key == "loss" else self.test_accuracy):
                handles.append(self.lines[f"test_{key}"])
            if key == "loss" and any(v > 0 for v in finite_values(self.penalty)):
                handles.append(self.lines["penalty"])
            stars = [(r.epoch, r.val_loss_after if key == "loss" else r.val_accuracy_after) for r in self.rounds if r.committed]
            stars = [(x, min(y, loss_top) if key == "loss" else y) for x, y in stars if math.isfinite(y)]
            if stars:
                (star,) = axes.plot(
                    [x for x, _ in stars],
                    [y for _, y in stars],
                    marker="*",
                    markersize=11,
                    color=VAL_COLOUR,
                    markeredgecolor="black",
                    markeredgewidth=0.6,
                    linestyle="none",
                    label="val after round (committed)",
                )
                self._round_artists.append(star)
                handles.append(star)
            seen = set()
            for mark in self.rounds:
                colour, style, label = mark.style
                line = axes.axvline(mark.epoch, color=colour, linestyle=style, linewidth=1.5)
                self._round_artists.append(line)
                if axes is self.loss_axes:  # named once, above the plots: never over a star or a curve
                    text = axes.annotate(
                        f"R{mark.round}",
                        (mark.epoch, 1.0),
                        xycoords=("data", "axes fraction"),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        color=colour,
                        fontsize=8,
                    )
                    self._round_artists.append(text)
                if label not in seen:
                    seen.add(label)
                    handles.append(Line2D([], [], color=colour, linestyle=style, label=f"round {label}"))
            legend = axes.legend(
                handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False
            )
            self._round_artists.append(legend)
        self.loss_axes.set_ylim(0.0, loss_top)
        self.accuracy_axes.set_xlabel("epoch")
        self.loss_axes.tick_params(labelbottom=False)
        self.accuracy_axes.set_ylim(0.0, 1.02)

    def _animated(self, axes) -> List[Line2D]:
        key = "loss" if axes is self.loss_axes else "accuracy"
        lines = [self.lines[f"{kind}_{key}"] for kind in ("batch", "train", "val", "broken", "test")]
        return lines + [self.lines["penalty"]] if key == "loss" else lines

    def _on_full_draw(self, _event) -> None:
        """After every full draw (ours, a resize, ...): cache the backgrounds, draw the lines."""
        self.full_draws += 1
        self._backgrounds = {axes: self.canvas.copy_from_bbox(axes.bbox) for axes in (self.loss_axes, self.accuracy_axes)}
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
