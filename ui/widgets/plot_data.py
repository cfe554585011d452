"""What the training plots show, without a widget: the series of a run (per epoch, per batch,
the feedback rounds) and the rules that read them: the loss axis's range, the values above it,
which optional series have a legend entry, a round's mark from a stored record.

`PlotData` is the data half of `ui.widgets.plots.PlotsPanel` (a mixin): plain lists as attributes
(tests read them), filled by `add_batch` / `add_epoch` / `add_round` / `set_history`, each of
which then asks the panel to `update_plot`. No tkinter and no matplotlib here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, List, Mapping, Optional

__all__ = ["DEFAULT_LOSS_TOP", "OUTLIER_FACTOR", "PlotData", "finite_values", "RoundMark", "loss_range", "round_mark_from_record"]

TRAIN_COLOUR = "#1f77b4"
VAL_COLOUR = "#ff7f0e"
BROKEN_COLOUR = "#9467bd"  # validation with the shortcut broken
TEST_COLOUR = "#17becf"  # the shortcut-free test folder
PENALTY_COLOUR = "#8c564b"
OUTLIER_FACTOR = 3.0  # losses above this many times the typical (median) value leave the range
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
    val_loss_after: float = math.nan  # the fine-tuned model's validation loss (its star)
    val_accuracy_after: float = math.nan

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


def finite_values(values: Iterable[float]) -> List[float]:
    return [v for v in values if math.isfinite(v)]


def loss_range(values: Iterable[float], floor: float = DEFAULT_LOSS_TOP) -> float:
    """The top of the loss axis: the largest value that is not an outlier (at most
    `OUTLIER_FACTOR` x the median of the finite values), with 25 % headroom, at least `floor`.
    """
    finite = sorted(v for v in finite_values(values) if v >= 0)
    if not finite:
        return floor
    median = finite[len(finite) // 2]
    limit = OUTLIER_FACTOR * max(median, floor / OUTLIER_FACTOR)
    kept = [v for v in finite if v <= limit]
    return max(floor, (max(kept) if kept else limit) * 1.25)


def _typical(values: List[float]) -> List[float]:
    """The 90th percentile of the finite values (as a one-element list; empty when none)."""
    finite = sorted(finite_values(values))
    if not finite:
        return []
    return [finite[min(len(finite) - 1, int(0.9 * len(finite)))]]


class PlotData:
    """The series of a run and the rules read from them (the data half of `PlotsPanel`)."""

    def _init_data(self) -> None:
        self.epochs: List[int] = []
        self.train_loss: List[float] = []
        self.val_loss: List[float] = []
        self.train_accuracy: List[float] = []
        self.val_accuracy: List[float] = []
        self.penalty: List[float] = []  # lambda x guidance per epoch (train loss - CE)
        self.broken_loss: List[float] = []  # validation with the shortcut broken (NaN: none)
        self.broken_accuracy: List[float] = []
        self.test_loss: List[float] = []  # the shortcut-free test folder (NaN: none)
        self.test_accuracy: List[float] = []
        self.batch_x: List[float] = []  # fractional epoch: epoch - 1 + batch / batches
        self.batch_loss: List[float] = []  # per-batch CE (the total when no CE was sent)
        self.batch_accuracy: List[float] = []
        self.rounds: List[RoundMark] = []
        self.run_epochs = 0  # last epoch of the run: the x range
        self.loss_top = DEFAULT_LOSS_TOP

    def update_plot(self, full: bool = False) -> None:
        """Draw the data soon: `PlotsPanel` does; the data alone draws nothing."""

    # ------------------------------------------------------------------ data in
    def clear(self) -> None:
        for series in self._series():
            series.clear()
        self.run_epochs = 0
        self.loss_top = DEFAULT_LOSS_TOP
        self.update_plot(full=True)

    def _epoch_series(self) -> tuple:
        return (
            self.epochs,
            self.train_loss,
            self.val_loss,
            self.train_accuracy,
            self.val_accuracy,
            self.penalty,
            self.broken_loss,
            self.broken_accuracy,
            self.test_loss,
            self.test_accuracy,
        )

    def _series(self) -> tuple:
        return (*self._epoch_series(), self.batch_x, self.batch_loss, self.batch_accuracy, self.rounds)

    def _append_epoch(self, epoch: int, train: Mapping[str, Any], val: Mapping[str, Any]) -> None:
        ce = _number(train.get("ce"))
        total = _number(train.get("loss"))
        self.epochs.append(int(epoch))
        self.train_loss.append(ce if math.isfinite(ce) else total)
        penalty = total - ce if math.isfinite(ce) and math.isfinite(total) else math.nan
        self.penalty.append(max(0.0, penalty) if math.isfinite(penalty) else math.nan)
        self.val_loss.append(_number(val.get("loss")))
        self.train_accuracy.append(_number(train.get("accuracy")))
        self.val_accuracy.append(_number(val.get("accuracy")))
        self.broken_loss.append(_number(val.get("broken_loss")))
        self.broken_accuracy.append(_number(val.get("broken_accuracy")))
        self.test_loss.append(_number(val.get("test_loss")))
        self.test_accuracy.append(_number(val.get("test_accuracy")))

    def set_run_range(self, last_epoch: int) -> None:
        """The run goes up to `last_epoch`: fix the x range so it never changes mid-run."""
        if last_epoch != self.run_epochs:
            self.run_epochs = int(last_epoch)
            self.update_plot(full=True)

    def add_batch(self, epoch: int, batch: int, batches: int, loss: float, accuracy: float, ce: float = math.nan) -> None:
        """A finished batch: extends the faint running curves (its CE when given).

        A batch at or before the last one shown starts an epoch again (Train after a Stop
        mid-epoch reruns that epoch): the stopped epoch's batches go, else the curve would
        run back to its start over them."""
        x = epoch - 1 + batch / max(1, batches)
        while self.batch_x and self.batch_x[-1] >= x:
            self.batch_x.pop()
            self.batch_loss.pop()
            self.batch_accuracy.pop()
        self.batch_x.append(x)
        ce = _number(ce)
        self.batch_loss.append(ce if math.isfinite(ce) else _number(loss))
        self.batch_accuracy.append(_number(accuracy))
        self.update_plot()

    def add_epoch(self, epoch: int, train: Mapping[str, Any], val: Mapping[str, Any]) -> None:
        """A finished epoch: `train`/`val` are the loops' dicts (keys `loss`, `ce`,
        `accuracy`; `val` may carry `broken_accuracy` / `broken_loss` and `test_accuracy` /
        `test_loss`)."""
        if epoch in self.epochs:  # replace, never duplicate, an epoch
            index = self.epochs.index(epoch)
            for series in self._epoch_series():
                del series[index]
        self._append_epoch(epoch, train, val)
        self.update_plot()

    def add_round(
        self,
        round_number: int,
        epoch: int,
        committed: bool,
        finetuned: bool,
        val_loss_after: float = math.nan,
        val_accuracy_after: float = math.nan,
    ) -> None:
        """A decided round; `val_*_after`: the fine-tuned model's validation (its star)."""
        self.rounds = [r for r in self.rounds if r.round != round_number]
        self.rounds.append(
            RoundMark(round_number, epoch, committed, finetuned, _number(val_loss_after), _number(val_accuracy_after))
        )
        self.update_plot(full=True)

    def set_history(
        self, epochs: Iterable[Mapping[str, Any]], rounds: Iterable[Mapping[str, Any]] = (), last_epoch: int = 0
    ) -> None:
        """Redraw from a stored run: `Session.epoch_history()` and `Session.history()` rows;
        `last_epoch`: the session's total epochs, so the x range is the run's, as while it ran.

        Epoch rows are the checkpoint's flat records (`{"epoch": 3, "train_loss": ...,
        "train_accuracy": ..., "val_loss": ..., "val_accuracy": ...}`) or nested
        (`{"epoch": 3, "train": {...}, "val": {...}}`); round rows have `round`, `epoch`,
        `decision` ("commit" | "reject" | "cancelled" | ...) or `committed`/`finetuned`.
        """
        for series in self._series():
            series.clear()
        self.loss_top = DEFAULT_LOSS_TOP
        for row in epochs:
            if "epoch" not in row:
                continue
            train = row.get("train") or {
                "loss": row.get("train_loss"),
                "ce": row.get("train_ce"),
                "accuracy": row.get("train_accuracy"),
            }
            val = row.get("val") or {
                "loss": row.get("val_loss"),
                "accuracy": row.get("val_accuracy"),
                "broken_loss": row.get("val_broken_loss"),
                "broken_accuracy": row.get("val_broken_accuracy"),
                "test_loss": row.get("val_test_loss"),
                "test_accuracy": row.get("val_test_accuracy"),
            }
            self._append_epoch(int(row["epoch"]), train, val)
        for index, row in enumerate(rounds, start=1):
            mark = round_mark_from_record(row, default_round=index)
            if mark is not None:
                self.rounds.append(mark)
        self.run_epochs = max([0, int(last_epoch or 0), *self.epochs])
        self.update_plot(full=True)

    # ------------------------------------------------------------------ rules
    def _limits(self) -> tuple:
        """(x_max, loss_top): when these change the static part must be redrawn."""
        x_max = max([2, self.run_epochs, *self.epochs, *[math.ceil(x) for x in self.batch_x], *[r.epoch for r in self.rounds]])
        # The range follows the typical epoch values; a spiky batch or an exploding validation
        # loss leaves the top of the plot (marked there) rather than squash every curve.
        wanted = loss_range(
            [
                *self.train_loss,
                *self.val_loss,
                *self.penalty,
                *self.broken_loss,
                *self.test_loss,
                *_typical(self.batch_loss),
                *[r.val_loss_after for r in self.rounds],
            ]
        )
        top = max(self.loss_top, wanted)  # only grows within a run: no jittering axis
        self.loss_top = top
        outliers = tuple(self._outliers(top))
        return (x_max, round(top, 6), outliers)

    def _outliers(self, top: float) -> List[tuple]:
        """(epoch, value, colour) of the epoch losses above the axis."""
        found = []
        for values, colour in (
            (self.val_loss, VAL_COLOUR),
            (self.train_loss, TRAIN_COLOUR),
            (self.broken_loss, BROKEN_COLOUR),
            (self.test_loss, TEST_COLOUR),
            (self.penalty, PENALTY_COLOUR),
        ):
            for epoch, value in zip(self.epochs, values):
                if math.isfinite(value) and value > top:
                    found.append((epoch, round(value, 6), colour))
        return found

    def _legend_key(self) -> tuple:
        """Which optional series have data (what the legends list besides the fixed entries)."""
        return (
            bool(finite_values(self.broken_loss)),
            bool(finite_values(self.broken_accuracy)),
            bool(finite_values(self.test_loss)),
            bool(finite_values(self.test_accuracy)),
            any(v > 0 for v in finite_values(self.penalty)),
            tuple((r.committed, r.finetuned) for r in self.rounds),
        )


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
    finetuned = bool(row.get("finetuned", committed or decision not in ("skip", "skipped", "cancelled", "")))
    report = row.get("report") or {}
    return RoundMark(
        int(row.get("round", default_round)),
        int(row["epoch"]),
        committed,
        finetuned,
        _number(report.get("val_loss_after")),
        _number(report.get("val_accuracy_after")),
    )
