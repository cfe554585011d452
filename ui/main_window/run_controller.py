"""The main window's run and session lifecycle, without widgets: what Train does, what the
trainer's events change, and what the log says about them.

Pure (no tkinter), so it is tested without a display; `MainWindow` asks it and applies the
answers to its widgets. It holds the session state that outlives one run:

- the session of the current / last run (`session`) and the one the next Train continues
  (`resume_session`: set by a run and by "Open session...", cleared by "New session");
- the epochs that session has done, and whether this Train made its folder (`fresh_session`:
  a fresh folder that ends up empty is removed);
- the per-epoch records the trust rules read, and the images queued for the next round.

Train's rules (`plan_train`): a session trained on other folders, or a model its checkpoint
cannot become, is refused with a message; a session whose epochs are used up asks for more
instead of running nothing; a blank data folder with no session means the demo data first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

from app.engine.config import FinetuneConfig, TrainConfig
from app.engine.trust_checks import REMEDIES, DataSizes, TrustWarning, trust_warnings
from app.run import messages as msg
from app.run.run_state import ENDED_STATES, RunState
from app.run.session import Session, default_sessions_root, new_session_folder
from ui.helpers.wording import plural

MAX_SUGGESTED_MORE_EPOCHS = 20  # "as many again" is suggested, within reason
SKIPPED_LISTED = 20  # unreadable images named one by one in the log; the rest are counted


@dataclass(frozen=True)
class Note:
    """One line for the log pane; `level` is the log pane's tag ("info", "warning", "error", "debug")."""

    text: str
    level: str = "info"


# ------------------------------------------------------------------------------ Train's plans
@dataclass(frozen=True)
class RefuseTrain:
    """Train cannot go on with these settings: say why in a dialog."""

    title: str
    message: str


@dataclass(frozen=True)
class AskMoreEpochs:
    """The session has done all its epochs: ask how many to add (`suggested` pre-filled)."""

    done: int
    suggested: int


@dataclass(frozen=True)
class PrepareDemo:
    """No data folder and no session: make (or find) the demo data, then start."""


@dataclass(frozen=True)
class StartRun:
    """Start the run: continue `resume_session` when there is one, else a new session."""

    train_dir: Optional[str]
    val_dir: Optional[str]
    config: TrainConfig
    test_dir: Optional[str] = None  # the shortcut-free test folder, if any


TrainPlan = Union[RefuseTrain, AskMoreEpochs, PrepareDemo, StartRun]


def same_folder(a: Optional[str], b: Optional[str]) -> bool:
    """Do two folder fields name the same folder (both blank counts as the same)?"""
    if not a or not b:
        return not a and not b
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def more_epochs(done: int, more: int) -> Tuple[int, Note]:
    """The form's new Epochs (it is the session's total) and the log line for adding `more`."""
    return done + more, Note(f"Adding {plural(more, 'epoch')}: epochs {done + 1}-{done + more} of this session")


# ------------------------------------------------------------------------------ feedback rounds
# The engine's remedies as this app can follow them: it has no setting to freeze BatchNorm, so
# neither the banner nor the log tells the user to (issue 21).
UI_REMEDIES = {
    **REMEDIES,
    "frozen_batchnorm": "more training images per class (or pretrained weights), so BatchNorm's running statistics "
    "settle; the app has no setting to freeze BatchNorm",
}


def ui_advice(warning: TrustWarning) -> str:
    """'Try: ...' for a trust warning, in the app's remedies."""
    return "Try: " + "; ".join(UI_REMEDIES[key] for key in warning.remedies) + "."


def shown_state(current: RunState, reported: RunState) -> Optional[RunState]:
    """The state to show for a trainer's StateChanged; None keeps the current one: after
    Stop, "stopping" stays until the thread says it has ended."""
    if current is RunState.STOPPING and reported not in ENDED_STATES:
        return None
    return RunState(reported)


@dataclass(frozen=True)
class RoundMark:
    """A decided round as the plots draw it (NaN when there was no fine-tune to measure)."""

    round: int
    epoch: int
    committed: bool
    finetuned: bool
    val_loss: float
    val_accuracy: float


# ------------------------------------------------------------------------------ the controller
@dataclass
class RunController:
    """The session lifecycle and the run bookkeeping behind the main window's widgets."""

    sessions_root: Optional[str] = None  # where new sessions go (None: the default)
    default_config: TrainConfig = field(default_factory=TrainConfig)  # assumed before a run's own
    session: Any = None  # app.run.session.Session of the current / last run
    resume_session: Any = None  # the session the next Train continues
    epochs_done: int = 0  # last completed epoch of the current session
    fresh_session: bool = False  # the running session was made by this Train (and is still empty)
    epochs: int = 1  # the last epoch of the run
    run_config: Optional[TrainConfig] = None
    sizes: Optional[DataSizes] = None  # the run's data sizes, for the trust rules
    epoch_records: List[dict] = field(default_factory=list)  # per-epoch dicts for the trust rules
    trust_warnings: List[TrustWarning] = field(default_factory=list)
    paint_queue: List[str] = field(default_factory=list)  # chosen between rounds: opened at the next one
    last_report: Any = None  # the FinetuneReport of the round being decided
    finished: Optional[msg.TrainingFinished] = None
    last_failure: Optional[msg.TrainingFailed] = None

    # -------------------------------------------------------------------- Train
    def plan_train(self, values: Any) -> TrainPlan:
        """What Train does with the form's `values` (ui.main_window.settings_panel.FormValues)."""
        session = self.resume_session
        if session is not None and not (
            same_folder(values.train_dir, session.train_dir) and same_folder(values.val_dir, session.val_dir)
        ):
            return RefuseTrain(
                "The session uses other data",
                f"This session trains on {session.train_dir} (validation: {session.val_dir or 'held out from it'}). "
                "Put those folders back to resume it, or press New session to train on other data.",
            )
        session_model = getattr(getattr(session, "train_config", None), "model", None)
        if session is not None and self.epochs_done and session_model and values.config.model != session_model:
            return RefuseTrain(
                "The session uses another model",
                f"This session trains {session_model}; its checkpoint cannot become {values.config.model}. "
                f"Put {session_model} back to continue it, or press New session to train the other model.",
            )
        if session is not None and values.config.epochs <= self.epochs_done:
            done = self.epochs_done
            return AskMoreEpochs(done, max(1, min(done, MAX_SUGGESTED_MORE_EPOCHS)))
        if values.train_dir is None and session is None:
            return PrepareDemo()
        return StartRun(values.train_dir, values.val_dir, values.config, values.test_dir)

    def sessions_folder(self) -> Path:
        """Where new sessions go: `sessions_root`, or the per-user default."""
        return Path(self.sessions_root) if self.sessions_root else default_sessions_root()

    def session_for_run(
        self,
        train_dir: Optional[str],
        val_dir: Optional[str],
        config: TrainConfig,
        finetune_config: FinetuneConfig,
        test_dir: Optional[str] = None,
    ) -> Tuple[Any, bool]:
        """The session a run trains in and whether it is new: the resumed one (its settings and
        test folder updated) or a new folder under `sessions_root`. Raises UserError / OSError /
        ValueError."""
        if self.resume_session is not None:
            session = self.resume_session
            session.update_configs(config)
            session.set_test_dir(test_dir)
            return session, False
        session = Session.create(
            new_session_folder(self.sessions_folder()), train_dir, val_dir, config, finetune_config, test_dir
        )
        self.epochs_done = 0
        self.fresh_session = True
        self.epoch_records = []
        self.trust_warnings = []
        return session, True

    def run_started(self, session: Any, config: TrainConfig) -> None:
        """A trainer was made for `session`: the next Train continues it (New session is explicit)."""
        self.session = session
        self.resume_session = session
        self.finished = None
        self.last_failure = None
        self.epochs = config.epochs
        self.run_config = config

    # -------------------------------------------------------------------- sessions
    def open_session(self, folder: str) -> Tuple[Any, List[dict], List[dict]]:
        """Reopen a session folder: Train continues it. Returns (session, epoch rows, round
        rows); raises UserError / OSError / ValueError when it is not a session."""
        session = Session.open(folder)
        epochs = session.epoch_history()
        rounds = session.history()
        self.resume_session = session
        self.session = session
        self.fresh_session = False
        self.epochs_done = epochs[-1].get("epoch", len(epochs)) if epochs else 0
        self.epoch_records = [dict(row) for row in epochs]
        self.sizes = None  # known again when Train reports the data's sizes
        return session, epochs, rounds

    def opened_note(self, session: Any, rounds: Sequence[dict]) -> Note:
        epochs, masks = plural(self.epochs_done, "epoch"), plural(len(session.masks.annotated()), "mask")
        return Note(f"Opened session {session.folder}: {epochs} done, {plural(len(rounds), 'feedback round')}, {masks}")

    def forget_session(self) -> Note:
        """ "New session": the next Train starts a fresh one. The log line (the session left
        behind stays on disk, and Open session... brings it back)."""
        before = self.resume_session or self.session
        self.resume_session = None
        self.session = None
        self.epochs_done = 0
        self.fresh_session = False
        self.paint_queue = []
        self.epoch_records = []
        self.sizes = None
        self.trust_warnings = []
        if before is None:
            return Note("The next Train starts a new session")
        return Note(f"The next Train starts a new session; {before.folder} is kept (Open session... reopens it)")

    def discard_fresh_session(self, session: Any) -> bool:
        """Remove the folder of a session this Train made if it holds nothing yet; True when
        it was removed (and forgotten)."""
        if session is None or not self.fresh_session:
            return False
        self.fresh_session = False
        if not session.discard_if_empty():
            return False
        if self.resume_session is session:
            self.resume_session = None
        if self.session is session:
            self.session = None
        return True

    def session_text(self) -> str:
        """The main window's session line."""
        if self.resume_session is not None:
            done = f", {plural(self.epochs_done, 'epoch')} done" if self.epochs_done else ""
            return f"{self.resume_session.folder}\n(Train continues this session{done}; New session starts another)"
        if self.session is not None:
            return f"{self.session.folder}"
        return "New session on Train"

    # -------------------------------------------------------------------- trainer events
    def on_run_started(self, event: msg.RunStarted) -> List[Note]:
        """Note the data's sizes (for the trust rules); the log lines about the run."""
        config = self.run_config or self.default_config
        self.sizes = DataSizes(
            event.n_train,
            event.n_val,
            len(event.classes),
            config.batch_size,
            config.model,
            tuple(getattr(event, "class_counts", ()) or ()),
        )
        self.epochs = event.epochs
        notes = [
            Note(
                f"Training on {event.device}: {event.n_train} training and {event.n_val} "
                f"validation images, {len(event.classes)} classes, epochs {event.first_epoch}-{event.epochs}"
            )
        ]
        skipped = event.skipped
        if skipped:
            verb = "was" if len(skipped) == 1 else "were"
            notes.append(Note(f"{plural(len(skipped), 'image')} {verb} skipped (unreadable):", "warning"))
            notes += [Note(f"  {relpath}: {reason}", "warning") for relpath, reason in skipped[:SKIPPED_LISTED]]
            if len(skipped) > SKIPPED_LISTED:
                notes.append(Note(f"  ... and {len(skipped) - SKIPPED_LISTED} more", "warning"))
        return notes

    def on_epoch(self, event: msg.EpochFinished) -> Note:
        """Count the epoch (the session has a checkpoint now: never discarded) and keep its
        numbers for the trust rules; the log line."""
        self.epochs_done = max(self.epochs_done, event.epoch)
        self.fresh_session = False
        self.epoch_records = [r for r in self.epoch_records if r.get("epoch") != event.epoch]
        self.epoch_records.append({"epoch": event.epoch, "train": dict(event.train), "val": dict(event.val)})
        train, val = event.train, event.val
        nan = float("nan")
        extra = "".join(
            f"; {name} acc {val[key]:.1%}"
            for key, name in (("broken_accuracy", "shortcut-broken"), ("test_accuracy", "test"))
            if isinstance(val.get(key), (int, float)) and math.isfinite(val[key])
        )
        return Note(
            f"Epoch {event.epoch}/{event.epochs}: train loss {train.get('loss', nan):.4f}, acc {train.get('accuracy', nan):.1%}; "
            f"val loss {val.get('loss', nan):.4f}, acc {val.get('accuracy', nan):.1%}{extra} ({event.seconds:.1f} s)"
        )

    def check_trust(self) -> Tuple[Sequence[TrustWarning], List[Note]]:
        """Re-run the trust rules on the epochs so far: the warnings for the banner (none
        before the data's sizes are known), and log lines when they changed to a non-empty set."""
        if self.sizes is None:
            return (), []
        warnings = trust_warnings(self.epoch_records, self.sizes, self.epochs_done or None)
        changed = [w.code for w in warnings] != [w.code for w in self.trust_warnings]
        self.trust_warnings = warnings
        if not (warnings and changed):
            return warnings, []
        return warnings, [Note(f"Warning: {w.title}: {w.detail}. {ui_advice(w)}", "warning") for w in warnings]

    def trust_note(self) -> str:
        """One line for the brush window when the predictions it shows may mean nothing."""
        if not self.trust_warnings:
            return ""
        return f"Predictions and confidences may mean nothing: {self.trust_warnings[0].title.lower()} (see the main window)"

    def on_finetune_done(self, event: msg.FinetuneDone) -> Note:
        report = self.last_report = event.report
        return Note(
            f"Fine-tune round {event.round} done after {report.steps} steps ({report.stop_text}): "
            f"val acc {report.val_accuracy_before:.1%} -> {report.val_accuracy_after:.1%}, "
            f"saliency on red {report.red_share_before:.1%} -> {report.red_share_after:.1%}"
        )

    def on_round_decided(self, event: msg.RoundDecided) -> Tuple[RoundMark, Note]:
        """The round's mark on the plots (with the fine-tune's numbers when it ran) and its log line."""
        report = self.last_report if event.finetuned else None
        self.last_report = None
        mark = RoundMark(
            event.round,
            event.epoch,
            event.committed,
            event.finetuned,
            report.val_loss_after if report else float("nan"),
            report.val_accuracy_after if report else float("nan"),
        )
        if event.committed:
            text = "committed: training continues with the fine-tuned weights"
        elif event.finetuned:
            text = "rejected: training continues with the weights from before the round"
        else:
            text = "skipped"
        return mark, Note(f"Round {event.round} (after epoch {event.epoch}) {text}")

    def on_finished(self, event: msg.TrainingFinished) -> Tuple[RunState, Note]:
        self.finished = event
        if event.stopped and event.epoch == 0:  # not "after epoch 0": no epoch had ended
            return RunState.STOPPED, Note("Stopped before epoch 1 ended; session saved (Train runs epoch 1 again)")
        if event.stopped:
            return RunState.STOPPED, Note(f"Stopped after epoch {event.epoch}; session saved")
        return RunState.FINISHED, Note(
            f"Training finished: {event.epoch} epochs. Train adds more epochs to this session; New session starts another."
        )

    def on_failed(self, event: msg.TrainingFailed) -> Tuple[List[Note], str]:
        """The log lines and the dialog's title of a failed run."""
        self.last_failure = event
        notes = [Note(f"Training failed: {event.message}", "error")]
        if event.details:
            notes.append(Note(event.details, "error"))
        return notes, "Cannot train" if event.user_error else "Training failed"

    # -------------------------------------------------------------------- painting between rounds
    def queue_paint(self, relpaths: Sequence[str]) -> Tuple[str, Note]:
        """No round is open: keep the images for the next one. The status line and the log line."""
        for relpath in relpaths:
            if relpath not in self.paint_queue:
                self.paint_queue.append(relpath)
        status = f"{plural(len(self.paint_queue), 'image')} queued: they open in the brush window at the next feedback round"
        return status, Note(f"Queued {plural(len(relpaths), 'image')} for painting at the next feedback round")

    def take_paint_queue(self) -> Tuple[str, ...]:
        """The queued images, to open with this round's brush window (the queue empties)."""
        queued, self.paint_queue = tuple(self.paint_queue), []
        return queued
