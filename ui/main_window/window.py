"""The main window: settings, Train / Pause / Stop, progress, live plots, log and status bar.

A thin widget class: it builds the widgets and applies to them what its parts decide. Its
buttons' actions are `ui.main_window.run_actions.RunActions` and its handling of the engine's
events `ui.main_window.engine_events.EngineEvents` (one concept per file); the pure parts:
- `ui.main_window.run_controls`: which buttons work in each run state, and the status text;
- `ui.main_window.run_controller`: the session lifecycle (what Train does, New / Open session, more
  epochs) and the bookkeeping and log lines of the trainer's events;
- `ui.main_window.round_windows`: opening and closing the brush window, chooser, gallery and
  reasonability window;
- `ui.main_window.demo_preparation`: the demo data behind a blank data folder, made in a background thread.

The training runs in the engine's background thread (`app.Trainer`); this window never touches
the model. Every engine event arrives on `self.events` (the trainer's `emit` is
`self.events.put`) and is handled on the Tk thread by an `EventPump`. Feedback rounds open the
brush window (`FeedbackNeeded`), then the chooser (`FinetuneDone`); their buttons become trainer
commands (`StartFinetune` / `SkipFeedback`, `Commit` / `Reject`). The brush window's "Apply
to..." panel sends `PreviewPropagation` / `ApplyPropagation` through `trainer.submit`; the
answers are routed back to that panel. The latest `ReasonabilityReady` (sent before each round)
is kept, and "Reasonability..." opens it in the reasonability window.

Sessions: the first Train makes a new session folder under `sessions_root` (default
`$XDG_DATA_HOME/saliency-steering/sessions/<YYYYmmdd-HHMMSS>`, i.e.
`~/.local/share/saliency-steering/sessions/...`); from then on Train continues that session
(after Stop, after the run finished, or after "Open session..."), with the epochs in the form as
the total. A new session is an explicit choice ("New session"). When the session has done all
its epochs, Train asks how many more to add instead of running nothing. A Train that fails
before producing anything removes the session folder it had just made.
The data folder left blank means the built-in demo data, made on first use into the cache
folder (`datasets.default_demo_dir()`) in a background thread.

Closing the window mid-run stops the trainer (which saves the checkpoint and the session),
waits for its thread without freezing the window (a "Stopping..." note shows if it takes a
moment), then destroys the window; every `after` timer is cancelled first.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import tkinter as tk
from collections import Counter
from pathlib import Path
from tkinter import ttk
from typing import Any, Callable, Dict, Optional

from app.engine.config import FinetuneConfig
from app.run import messages as msg
from app.run.run_state import RunState
from ui.tk_support.event_pump import EventPump
from ui.tk_support.quiet_teardown import destroy, quietly
from ui.widgets.log_pane import LogPane, QueueLogHandler
from ui.widgets.plots import PlotsPanel
from ui.widgets.progress_panel import ProgressPanel
from ui.widgets.scrollable import ScrollableFrame
from ui.widgets.tooltip import Tooltip
from ui.windows.dialogs import ConfirmDialog, ErrorDialog, MoreEpochsDialog
from ui.windows.session_buttons import add_session_buttons

from .demo_preparation import DemoFailed, DemoReady
from .engine_events import EngineEvents
from .plots_room import PlotsRoom
from .round_windows import RoundWindows
from .run_actions import PAUSE_TEXT, RunActions
from .run_controller import Note, RunController
from .run_controls import controls_for
from .settings_form import DEFAULT_CONFIG
from .settings_panel import SettingsPanel
from .trust_banner import TrustBanner

log = logging.getLogger(__name__)

__all__ = ["DemoFailed", "DemoReady", "MainWindow"]

JOIN_TIMEOUT_S = 60.0  # how long closing waits for the trainer thread before giving up
STOPPING_NOTE_AFTER_MS = 300  # show "Stopping..." when the thread takes longer than this
CLOSE_POLL_MS = 50  # how often closing checks whether the trainer thread has ended
ENGINE_LOGGERS = ("app", "datasets", "models", "loss")  # their warnings show in the log pane

TrainerFactory = Callable[..., Any]


def _default_trainer_factory(config, finetune_config, paths, *, emit, session):  # type: ignore[no-untyped-def]
    from app.run.trainer import Trainer  # imported late: torch is slow to import

    return Trainer(config, finetune_config, paths, emit=emit, session=session)


def _kept_in(part: str, name: str, doc: str) -> property:
    """A window attribute that lives in one of its parts (controller, round windows), under
    the name tests and scripts read it by."""
    return property(
        lambda self: getattr(getattr(self, part), name), lambda self, value: setattr(getattr(self, part), name, value), doc=doc
    )


class MainWindow(RunActions, EngineEvents, ttk.Frame):
    """The app's main window, packed into `master` (normally the `tk.Tk` root)."""

    sessions_root = _kept_in("controller", "sessions_root", "where new sessions go (None: the per-user default)")
    session = _kept_in("controller", "session", "app.Session of the current / last run")
    resume_session = _kept_in("controller", "resume_session", "the session Train continues (None: a new one)")
    epochs_done = _kept_in("controller", "epochs_done", "last completed epoch of the current session")
    paint_queue = _kept_in("controller", "paint_queue", "relpaths chosen between rounds: opened at the next one")
    trust_warnings = _kept_in("controller", "trust_warnings", "the trust rules' warnings on the epochs so far")
    finished = _kept_in("controller", "finished", "the TrainingFinished of the last run, if it ended so")
    last_failure = _kept_in("controller", "last_failure", "the TrainingFailed of the last run, if it failed")
    brush_window = _kept_in("rounds", "brush", "the open brush window, or None")
    chooser_window = _kept_in("rounds", "chooser", "the open chooser, or None")
    gallery_window = _kept_in("rounds", "gallery", "the last gallery opened, or None")
    reasonability_window = _kept_in("rounds", "reasonability", "the reasonability window, or None")

    def __init__(
        self,
        master: tk.Tk,
        *,
        data_dir: Optional[str] = None,
        session_dir: Optional[str] = None,
        sessions_root: Optional[str] = None,
        demo_dir: Optional[str] = None,
        demo_shortcut: str = "corner",
        finetune_config: FinetuneConfig = FinetuneConfig(),
        trainer_factory: TrainerFactory = _default_trainer_factory,
        join_timeout_s: float = JOIN_TIMEOUT_S,
        destroy_root_on_close: bool = True,
        geometry_store: Any = None,
        reopen_last: bool = False,
    ) -> None:
        """`reopen_last`: with no session or data folder given, reopen the most recently used
        session (the desktop app does; tests choose)."""
        super().__init__(master, padding=6)
        self.root = master
        self.demo_dir = demo_dir
        self.demo_shortcut = demo_shortcut  # which built-in demo a blank data folder means
        self.finetune_config = finetune_config
        self.trainer_factory = trainer_factory
        self.join_timeout_s = join_timeout_s
        self.destroy_root_on_close = destroy_root_on_close
        self.geometry_store = geometry_store  # ui.helpers.window_geometry.GeometryStore, or None

        self.controller = RunController(sessions_root=sessions_root, default_config=DEFAULT_CONFIG)
        self.rounds = RoundWindows(master, geometry_store)
        self.events: "queue.Queue[Any]" = queue.Queue()
        self.trainer: Any = None
        self.thread: Optional[threading.Thread] = None
        self.state = RunState.IDLE
        self.paused = False
        self.closing = False
        self.closed = False
        self.device = ""
        self.stop_dialog: Optional[ConfirmDialog] = None  # "Stop the run?" while painting
        self.sessions_dialog: Any = None  # ui.windows.sessions_dialog.SessionsDialog while open
        self.brush_view: Dict[str, Any] = {}  # the brush window's view as the last round left it
        self.reasonability: Optional[msg.ReasonabilityReady] = None  # the latest matrix
        self.error_dialog: Optional[ErrorDialog] = None
        self.more_epochs_dialog: Optional[MoreEpochsDialog] = None
        self.event_counts: Counter = Counter()  # handled events per type name (tests, benches)
        self.listeners: list = []  # callables(event) called after each event is handled
        self._after_ids: Dict[str, str] = {}
        self._close_started = 0.0
        self._pending_values: Any = None  # the form read by the Train that waits for the demo data
        self.held_notes: list = []  # log lines waiting for their epoch's line (engine_events)

        master.title("Saliency steering")
        master.protocol("WM_DELETE_WINDOW", self.on_close)
        self._build()
        self.pack(fill="both", expand=True)

        self.log_handler = QueueLogHandler(self.events, level=logging.WARNING)
        # The image scan warns per skipped file and once more in sum; RunStarted lists the
        # skipped files once, so the scan's own warnings would show each file three times.
        self.log_handler.addFilter(lambda record: record.name != "datasets.image_folder")
        for name in ENGINE_LOGGERS:
            logging.getLogger(name).addHandler(self.log_handler)

        self.pump = EventPump(self, self.events, self.handle_event)
        self.pump.start()
        self._set_state(RunState.IDLE)
        if session_dir:
            self.open_session(session_dir)
        elif data_dir:
            self.settings.vars["train_dir"].set(data_dir)
        elif reopen_last:
            self.reopen_last_session()

    # ------------------------------------------------------------------------------ layout
    def _build(self) -> None:
        # the status bar first: pack gives it its line even when the window is small
        status = ttk.Frame(self, relief="sunken", padding=(6, 2))
        status.pack(fill="x", side="bottom", pady=(6, 0))
        self.status_var = tk.StringVar(self, value="")
        self.device_var = tk.StringVar(self, value="Device: not started")
        ttk.Label(status, textvariable=self.status_var).pack(side="left")
        ttk.Label(status, textvariable=self.device_var).pack(side="right")

        top = ttk.Frame(self)
        top.pack(fill="both", expand=True)

        # The settings form scrolls when the screen is short (1280 x 720); the run buttons and
        # the session box stay below it, always in view (they were half cut at 720 px), and the
        # progress bars live under the plots.
        column = ttk.Frame(top)
        column.pack(side="left", fill="y", padx=(0, 8))
        session_frame = ttk.LabelFrame(column, text="Session", padding=6)
        session_frame.pack(side="bottom", fill="x")
        # Two rows: the run's buttons, then the windows that look at the data (one row was too
        # wide for 1280 px once Discover... joined: the plots' column lost the fine-tune status).
        tools = ttk.Frame(column, padding=(0, 0, 0, 8))
        tools.pack(side="bottom", fill="x")
        buttons = ttk.Frame(column, padding=(0, 8, 0, 4))
        buttons.pack(side="bottom", fill="x")
        self.left_column = ScrollableFrame(column)
        self.left_column.pack(side="top", fill="both", expand=True)
        self.settings = SettingsPanel(self.left_column.body, base_config=DEFAULT_CONFIG)
        self.settings.pack(fill="x")

        self.train_button = ttk.Button(buttons, text="\u25b6 Train", command=self.on_train)
        self.pause_button = ttk.Button(buttons, text=PAUSE_TEXT, command=self.on_pause)
        self.stop_button = ttk.Button(buttons, text="\u25a0 Stop", command=self.on_stop)
        for button in (self.train_button, self.pause_button, self.stop_button):
            button.pack(side="left", padx=(0, 6))
        self.gallery_button = ttk.Button(tools, text="Gallery...", command=self.on_main_gallery)
        self.gallery_button.pack(side="left", padx=(0, 6))
        self.discover_button = ttk.Button(tools, text="Discover...", command=self.on_discover)
        self.discover_button.pack(side="left", padx=(0, 6))
        self.reasonability_button = ttk.Button(tools, text="Reasonability...", command=self.on_reasonability)
        self.reasonability_button.pack(side="left")
        self.gallery_button.state(["disabled"])  # until there is a session
        self.discover_button.state(["disabled"])  # until the session has a checkpoint to explain
        self.discover_tip = Tooltip(self.discover_button, self._discover_tip)
        self.reasonability_button.state(["disabled"])  # until the first matrix arrives

        self.session_var = tk.StringVar(self, value="New session on Train")
        self.session_label = ttk.Label(session_frame, textvariable=self.session_var, wraplength=420, justify="left")
        self.session_label.pack(fill="x")
        # the folder's path wraps at the box's width, not mid-name at a fixed 420 px
        self.session_label.bind("<Configure>", lambda e: self.session_label.configure(wraplength=max(200, e.width - 4)))
        session_buttons = ttk.Frame(session_frame)
        session_buttons.pack(fill="x", pady=(4, 0))
        self.open_session_button = ttk.Button(session_buttons, text="Open session...", command=self.on_open_session)
        self.open_session_button.pack(side="left")
        self.new_session_button = ttk.Button(session_buttons, text="New session", command=self.on_new_session)
        self.new_session_button.pack(side="left", padx=(6, 0))
        session_tools = ttk.Frame(session_frame)
        session_tools.pack(fill="x", pady=(4, 0))
        self.import_masks_button, self.report_button = add_session_buttons(session_tools, self)  # issue 24

        right = ttk.Frame(top)
        right.pack(side="left", fill="both", expand=True)
        self.trust_banner = TrustBanner(
            right, on_smaller_model=self.on_use_smaller_model, on_weights=self.on_choose_weights, place=self._place_banner
        )
        # The plots are packed before the progress bars and the log: on a short screen (1280 x
        # 720 with the trust banner) the log gives up its lines first, down to two, and the
        # plots keep a readable height (they were ~60 px an axes); see PlotsRoom.
        self.plots = PlotsPanel(right)
        self.plots.pack(fill="both", expand=True)
        below = ttk.Frame(right)
        below.pack(fill="x")
        self.progress = ProgressPanel(below)
        self.progress.pack(fill="x", pady=(6, 0))
        ttk.Label(below, text="Log").pack(anchor="w", pady=(4, 0))
        short = self.winfo_screenheight() < 900
        self.log = LogPane(below, height=5 if short else 8)
        self.log.pack(fill="both", expand=True)
        self.plots_room = PlotsRoom(right, self.trust_banner, self.plots, below, self.log)

    # ------------------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        """True while a trainer thread (or the demo-data preparation) is alive."""
        return self.state is RunState.PREPARING or (self.thread is not None and self.thread.is_alive())

    def _set_state(self, state: RunState) -> None:
        self.state = RunState(state)
        controls = controls_for(self.state, pause_requested=self.paused and self.state is not RunState.PAUSED)
        self.status_var.set(controls.status)
        for button, enabled in (
            (self.train_button, controls.train),
            (self.stop_button, controls.stop),
            (self.pause_button, controls.pause),
            (self.open_session_button, controls.sessions),
            (self.new_session_button, controls.sessions),
        ):
            button.state(["!disabled"] if enabled else ["disabled"])
        self.settings.set_enabled(controls.settings)
        self.trust_banner.set_actions_enabled(controls.settings)

    def _log(self, *notes: Note) -> None:
        for note in notes:
            self.log.append(note.text, note.level)

    def _update_session_label(self) -> None:
        self.gallery_button.state(["!disabled"] if self.session is not None else ["disabled"])
        self.session_var.set(self.controller.session_text())
        self.update_discover_button()

    def has_checkpoint(self) -> bool:
        """Does the session have a saved model for "Discover..." to explain?"""
        path = getattr(self.session, "checkpoint_path", None)
        return path is not None and Path(path).is_file()

    def update_discover_button(self) -> None:
        """'Discover...' works once the session has a checkpoint (before, it could only fail)."""
        self.discover_button.state(["!disabled"] if self.has_checkpoint() else ["disabled"])

    def _discover_tip(self) -> str:
        if self.has_checkpoint():
            return "Group the training images by what the session's saved model looks at, to find shortcuts"
        return "Discovery needs a trained model: train one epoch, or open a session that has a checkpoint."

    # ------------------------------------------------------------------------------ trust
    def _place_banner(self) -> None:
        self.trust_banner.pack(fill="x", before=self.plots, pady=(0, 6))

    def _check_trust(self) -> None:
        """Re-run the trust rules on the epochs so far; show or hide the banner."""
        warnings, notes = self.controller.check_trust()
        self.trust_banner.show(warnings)
        self._log(*notes)

    # ------------------------------------------------------------------------------ dialogs
    def show_error(self, message: str, *, details: str = "", user_error: bool = False, title: str = "Error") -> ErrorDialog:
        destroy(self.error_dialog)
        self.error_dialog = ErrorDialog(self.root, message, details=details, title=title, user_error=user_error)
        return self.error_dialog

    # ------------------------------------------------------------------------------ closing
    def on_close(self) -> None:
        """Window closed: stop the trainer, wait for its thread without freezing, then quit."""
        if self.closed:
            return
        if not self.closing:
            self.closing = True
            self._close_started = time.monotonic()
            if self.trainer is not None and self.thread is not None and self.thread.is_alive():
                self.trainer.stop()
                self.rounds.close_round()
                self.log.append("Closing: stopping the training and saving the session...")
                self._after_ids["stopping_note"] = self.after(STOPPING_NOTE_AFTER_MS, self._show_stopping_note)
        self._poll_close()

    def _show_stopping_note(self) -> None:
        self._after_ids.pop("stopping_note", None)
        self._set_state(RunState.STOPPING)
        self.status_var.set("Stopping... saving the session (the window closes by itself)")

    def _poll_close(self) -> None:
        self._after_ids.pop("close_poll", None)
        alive = self.thread is not None and self.thread.is_alive()
        waited = time.monotonic() - self._close_started
        if alive and waited < self.join_timeout_s:
            self._after_ids["close_poll"] = self.after(CLOSE_POLL_MS, self._poll_close)
            return
        if alive:
            log.warning("the training thread did not stop within %.0f s; closing anyway", waited)
        self.teardown()

    def teardown(self) -> None:
        """Cancel timers, detach the log handler and destroy the window (idempotent)."""
        if self.closed:
            return
        self.closed = self.closing = True
        self.pump.stop()
        for after_id in self._after_ids.values():
            quietly(self.after_cancel, after_id)
        self._after_ids.clear()
        for name in ENGINE_LOGGERS:
            logging.getLogger(name).removeHandler(self.log_handler)
        self.rounds.close_all()
        destroy(self.error_dialog)
        quietly(self.progress.epoch_bar.stop)
        destroy(self.root if self.destroy_root_on_close else self)
