"""The main window: settings, Train / Pause / Stop, progress, live plots, log and status bar.

A thin widget class: it builds the widgets and applies to them what its parts decide.
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
import sys
import threading
import time
import tkinter as tk
import traceback
from collections import Counter
from tkinter import filedialog, ttk
from typing import Any, Callable, Dict, Optional, Sequence

from app.engine.config import FinetuneConfig, TrainConfig
from app.errors import UserError
from app.run import messages as msg
from app.run.run_state import RunState
from app.run.session import recent_sessions
from ui.helpers.gallery_filter import list_folder
from ui.helpers.round_cost import RoundCost, round_cost, step_seconds
from ui.helpers.wording import plural
from ui.tk_support.event_pump import EventPump
from ui.tk_support.quiet_teardown import destroy, quietly
from ui.widgets.log_pane import LogLine, LogPane, QueueLogHandler
from ui.widgets.plots import PlotsPanel
from ui.widgets.progress_panel import ProgressPanel
from ui.widgets.scrollable import ScrollableFrame
from ui.windows.dialogs import ConfirmDialog, ErrorDialog, MoreEpochsDialog
from ui.windows.discovery_window import DiscoveryWindow
from ui.windows.mask_import_dialog import add_session_buttons
from ui.windows.sessions_dialog import SessionsDialog

from .demo_preparation import DemoFailed, DemoReady, demo_folders, demo_is_ready, demo_target, start_demo_preparation
from .round_windows import RoundWindows
from .run_controller import (
    AskMoreEpochs,
    Note,
    PrepareDemo,
    RefuseTrain,
    RunController,
    more_epochs,
    paint_cancelled,
    paint_done,
    reasonability_note,
    round_can_open,
    shown_state,
)
from .run_controls import controls_for
from .settings_panel import DEFAULT_CONFIG, FormError, SettingsPanel
from .trust_banner import TrustBanner

log = logging.getLogger(__name__)

__all__ = ["DemoFailed", "DemoReady", "MainWindow"]

JOIN_TIMEOUT_S = 60.0  # how long closing waits for the trainer thread before giving up
STOPPING_NOTE_AFTER_MS = 300  # show "Stopping..." when the thread takes longer than this
CLOSE_POLL_MS = 50  # how often closing checks whether the trainer thread has ended
ENGINE_LOGGERS = ("app", "datasets", "models", "loss")  # their warnings show in the log pane

PAUSE_TEXT = "Pause"  # plain words: the pause symbol is missing from common X fonts
RESUME_TEXT = "Resume"

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


class MainWindow(ttk.Frame):
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
        self.reasonability_button.state(["disabled"])  # until the first matrix arrives

        self.session_var = tk.StringVar(self, value="New session on Train")
        self.session_label = ttk.Label(session_frame, textvariable=self.session_var, wraplength=420, justify="left")
        self.session_label.pack(fill="x")
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
        # packed from the bottom first, so the plots (last) give up room on a short screen
        short = self.winfo_screenheight() < 900
        self.log = LogPane(right, height=5 if short else 8)
        self.log.pack(side="bottom", fill="both", expand=False)
        ttk.Label(right, text="Log").pack(side="bottom", anchor="w", pady=(4, 0))
        self.progress = ProgressPanel(right)
        self.progress.pack(side="bottom", fill="x", pady=(6, 0))
        self.plots = PlotsPanel(right)
        self.plots.pack(fill="both", expand=True)

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

    # ------------------------------------------------------------------------------ trust
    def _place_banner(self) -> None:
        self.trust_banner.pack(fill="x", before=self.plots, pady=(0, 6))

    def _check_trust(self) -> None:
        """Re-run the trust rules on the epochs so far; show or hide the banner."""
        warnings, notes = self.controller.check_trust()
        self.trust_banner.show(warnings)
        self._log(*notes)

    def on_use_smaller_model(self) -> None:
        """Remedy: small_cnn in the form; a new session, as the model changes."""
        if self.running:
            self.show_error(
                "Stop the run first: the model changes with a new session.", user_error=True, title="The run is going"
            )
            return
        self.on_new_session()
        self.settings.vars["model"].set("small_cnn")
        self.log.append("Model set to small_cnn: press Train to start a new session with it")

    def on_choose_weights(self) -> None:
        """Remedy: pretrained weights from a local file, in the form (a new session)."""
        if self.running:
            self.show_error("Stop the run first: new weights mean a new session.", user_error=True, title="The run is going")
            return
        path = filedialog.askopenfilename(
            parent=self, title="Pretrained weights (.pth, .pt)", filetypes=[("PyTorch weights", "*.pth *.pt"), ("All files", "*")]
        )
        if path:
            self.on_new_session()
            self.settings.vars["weights_path"].set(path)
            self.log.append(f"Weights file {path}: press Train to start a new session from it")

    # ------------------------------------------------------------------------------ actions
    def on_train(self) -> bool:
        """Validate the form and start a run; False (with a message) when it cannot start."""
        if self.running:
            return False
        try:
            values = self.settings.read()
        except FormError as error:
            self.show_error("Some settings need fixing:\n" + str(error), user_error=True, title="Check the settings")
            return False
        self._pending_values = values
        plan = self.controller.plan_train(values)
        if isinstance(plan, RefuseTrain):
            self.show_error(plan.message, user_error=True, title=plan.title)
            return False
        if isinstance(plan, AskMoreEpochs):
            self._ask_more_epochs(plan)
            return False
        if isinstance(plan, PrepareDemo):
            self._prepare_demo_then_train()
            return True
        return self._start_run(plan.train_dir, plan.val_dir, plan.config, plan.test_dir)

    def _ask_more_epochs(self, plan: AskMoreEpochs) -> None:
        """The session's epochs are used up: offer to add more (the form's Epochs is the
        total, so "more" raises it), instead of a run that does nothing."""
        destroy(self.more_epochs_dialog)

        def accept(more: int) -> None:
            self.more_epochs_dialog = None
            total, note = more_epochs(plan.done, more)
            self.settings.vars["epochs"].set(str(total))
            self._log(note)
            self.on_train()

        def dismiss() -> None:
            self.more_epochs_dialog = None

        self.more_epochs_dialog = MoreEpochsDialog(self.root, plan.done, plan.suggested, accept, dismiss)

    def _prepare_demo_then_train(self) -> None:
        target = demo_target(self.demo_dir, self.demo_shortcut)
        if demo_is_ready(target):
            self._on_demo_ready(str(target))
            return
        self._set_state(RunState.PREPARING)
        self.log.append(f"Making the demo data in {target} (first run only)...")
        self.progress.epoch_bar.configure(mode="indeterminate")
        self.progress.epoch_bar.start(50)
        start_demo_preparation(target, self.demo_shortcut, self.events.put)

    def _stop_indeterminate(self) -> None:
        self.progress.epoch_bar.stop()
        self.progress.epoch_bar.configure(mode="determinate", value=0.0)

    def _on_demo_ready(self, root: str) -> None:
        self._stop_indeterminate()
        self._set_state(RunState.IDLE)
        if self.closing:
            return
        values = self._pending_values
        train_dir, val_dir, test_dir = demo_folders(root, values.val_dir, values.test_dir)
        self._start_run(train_dir, val_dir, values.config, test_dir)

    def _start_run(
        self, train_dir: Optional[str], val_dir: Optional[str], config: TrainConfig, test_dir: Optional[str] = None
    ) -> bool:
        session = None
        try:
            session, fresh = self.controller.session_for_run(train_dir, val_dir, config, self.finetune_config, test_dir)
            self.settings.show_folders(session.train_dir, session.val_dir, session.test_dir)
            if fresh:
                self.log.append(f"New session {session.folder}")
                self.plots.clear()
                self._forget_reasonability()
                self.trust_banner.show(())
            else:
                self.log.append(f"Resuming session {session.folder}")
            paths = session.run_paths()
            trainer = self.trainer_factory(config, session.finetune_config, paths, emit=self.events.put, session=session)
        except (UserError, OSError, ValueError) as error:
            self._discard_fresh_session(session)
            self.show_error(str(error), user_error=True, title="Cannot start training")
            self._set_state(RunState.IDLE)
            return False
        self.controller.run_started(session, config)
        self.trainer = trainer
        self.paused = False
        self.pause_button.configure(text=PAUSE_TEXT)
        self.progress.reset()
        self._update_session_label()
        self._set_state(RunState.LOADING)
        self.thread = trainer.start()
        return True

    def on_pause(self) -> None:
        """Pause between batches, or resume."""
        if self.trainer is None or not self.running:
            return
        if self.paused:
            self.paused = False
            self.trainer.resume()
            self.pause_button.configure(text=PAUSE_TEXT)
            self.log.append("Resumed")
            if self.state is RunState.PAUSED:
                self._set_state(RunState.TRAINING)
        else:
            self.paused = True
            self.trainer.pause()
            self.pause_button.configure(text=RESUME_TEXT)
            self.log.append("Pausing after the current batch")
            self._set_state(self.state)

    def on_stop(self) -> Any:
        """Stop. While a fine-tune round runs: end the round now, and the chooser opens with the
        candidate so far (the run goes on after the decision). While the brush window is open:
        ask first (the round would end unfinished; the paint is kept). Else stop the run (the
        trainer saves its checkpoint); the round's windows are closed. Returns the dialog asked,
        if any."""
        if self.trainer is None or not self.running:
            return None
        if self.state is RunState.FINETUNING:
            self.trainer.submit(msg.StopRound())
            self.log.append("Ending the fine-tune round: the chooser opens with the candidate so far")
            self.status_var.set("Ending the round after the current step; the chooser follows...")
            return None
        if self.rounds.brush_is_open():
            self.stop_dialog = ConfirmDialog(
                self.root,
                "Stop the run?",
                "The brush window is open. Stopping ends this round without fine-tuning; what you "
                "painted is saved and used when you press Train again.",
                "Stop the run",
                "Keep painting",
                self.stop_run,
            )
            return self.stop_dialog
        self.stop_run()
        return None

    def stop_run(self) -> None:
        """Stop the run now (the trainer saves its checkpoint); windows of a round are closed."""
        if self.trainer is None or not self.running:
            return
        self.trainer.stop()
        self.paused = False
        self.pause_button.configure(text=PAUSE_TEXT)
        self.rounds.close_round()
        self.log.append("Stopping after the current batch...")
        self._set_state(RunState.STOPPING)

    def on_reasonability(self) -> Any:
        """Open (or raise and refresh) the reasonability window on the latest matrix."""
        if self.reasonability is None:
            return None
        return self.rounds.show_reasonability(self.reasonability, self.paint_images)

    # ------------------------------------------------------------------------------ sessions
    def on_open_session(self) -> Any:
        """Open session...: the recent sessions (data folder, model, epochs, rounds, masks),
        or any other session folder. Returns the dialog."""
        root = self.controller.sessions_folder()
        self.sessions_dialog = SessionsDialog(self.root, recent_sessions(root), root, self.open_session)
        return self.sessions_dialog

    def reopen_last_session(self) -> bool:
        """At start: reopen the most recently used session, so Train continues it (New session
        starts over). False when there is none or it cannot be opened (logged)."""
        recent = recent_sessions(self.controller.sessions_folder(), limit=1)
        if not recent:
            return False
        try:
            session, epochs, rounds = self.controller.open_session(recent[0].folder)
        except (UserError, OSError, ValueError) as error:
            self.log.append(f"The last session could not be reopened: {error}", "warning")
            return False
        self._show_opened(session, epochs, rounds)
        return True

    def open_session(self, folder: str) -> bool:
        """Load a session folder: its settings into the form, its curves and rounds into the
        plots; Train then resumes it. False (with a dialog) when it is not a session."""
        if self.running:
            return False
        try:
            session, epochs, rounds = self.controller.open_session(folder)
        except (UserError, OSError, ValueError) as error:
            self.show_error(str(error), user_error=True, title="Cannot open the session")
            return False
        self._show_opened(session, epochs, rounds)
        return True

    def _show_opened(self, session: Any, epochs: Sequence[dict], rounds: Sequence[dict]) -> None:
        """An opened session's settings into the form, its curves and rounds into the plots."""
        self.trust_banner.show(())
        self.settings.load(session.train_dir, session.val_dir, session.train_config, session.test_dir)
        self.plots.set_history(epochs, rounds)
        self._update_session_label()
        self._log(self.controller.opened_note(session, rounds))

    def on_new_session(self) -> None:
        """Forget the opened session: the next Train starts a fresh one."""
        if self.running:
            return
        self.controller.forget_session()
        self.settings.forget_filled_folders()  # the demo's folders, filled in by its run
        self.trust_banner.show(())
        self.plots.clear()
        self.progress.reset()
        self._forget_reasonability()
        self._update_session_label()

    def _discard_fresh_session(self, session: Any) -> None:
        """Remove the folder of a session this Train made if it holds nothing yet."""
        if self.controller.discard_fresh_session(session):
            self.log.append(f"Removed the empty session folder {session.folder}", "debug")
            self._update_session_label()

    def _forget_reasonability(self) -> None:
        self.reasonability = None
        self.reasonability_button.state(["disabled"])

    # ------------------------------------------------------------------------------ events
    def handle_event(self, event: Any) -> None:
        """Dispatch one engine event (runs on the Tk thread, called by the pump)."""
        handler = self._handlers.get(type(event))
        self.event_counts[type(event).__name__] += 1
        if handler is not None:
            handler(self, event)
        else:
            log.debug("unhandled event %r", event)
        for listener in list(self.listeners):
            listener(event)

    def _on_run_started(self, event: msg.RunStarted) -> None:
        notes = self.controller.on_run_started(event)
        self.device = event.device
        self.device_var.set(f"Device: {event.device}")
        self.progress.run_started(event.first_epoch, event.epochs, event.batches_per_epoch)
        self.plots.set_run_range(event.epochs)
        self._log(*notes)

    def _on_batch(self, event: msg.BatchFinished) -> None:
        self.progress.batch_done(event.epoch, event.batch, event.batches, self.controller.epochs)
        self.plots.add_batch(
            event.epoch, event.batch, event.batches, event.loss, event.accuracy, getattr(event, "ce", float("nan"))
        )

    def _on_epoch(self, event: msg.EpochFinished) -> None:
        note = self.controller.on_epoch(event)
        if self.session is not None:
            try:
                self.session.record_epochs(event.epoch)  # for the recent-sessions list
            except OSError as error:
                log.warning("cannot note the epoch in %s: %s", self.session.folder, error)
        self.progress.epoch_done(event.epoch, event.epochs, event.seconds)
        self.plots.add_epoch(event.epoch, event.train, event.val)
        self._check_trust()
        self._log(note)

    def _on_feedback(self, event: msg.FeedbackNeeded) -> None:
        if not round_can_open(self.closing, self.trainer):
            return
        self.log.append(
            f"Feedback round {event.round} after epoch {event.epoch}: {len(event.items)} images chosen by {event.strategy}"
        )
        trainer = self.trainer
        masks = self.session.masks

        def answer(relpaths: Optional[Sequence[str]], steps: Optional[int] = None) -> None:  # None: cancelled
            if self.rounds.brush is not None:
                self.brush_view = self.rounds.brush.view_settings()  # the next round opens with it
            self.rounds.brush = None
            if trainer.stopping:
                return
            reply = paint_cancelled() if relpaths is None else paint_done(relpaths, masks, steps)
            self._log(reply.note)
            if reply.status:
                self.status_var.set(reply.status)
            trainer.submit(reply.command)

        try:
            self.rounds.open_brush(
                event,
                masks,
                on_done=lambda relpaths: answer(relpaths, getattr(self.rounds.brush, "round_steps", None)),
                on_cancel=lambda: answer(None),
                round_cost=self._round_cost(),
                view_settings=self.brush_view,
                submit=trainer.submit,
                on_save_failed=self._mask_save_failed,
                trust_note=self.controller.trust_note(),
                on_gallery=self.on_gallery,
                on_open_images=self.paint_images,
            )
            if self.paint_queue:  # chosen between rounds (gallery, reasonability window)
                queued = self.controller.take_paint_queue()
                self.log.append(f"Opening the {plural(len(queued), 'queued image')} as well")
                trainer.submit(msg.PrepareImages(queued))
        except Exception as error:  # noqa: BLE001 -- never leave the trainer waiting for paint
            log.exception("cannot open the brush window")
            self.rounds.brush = None
            trainer.submit(msg.SkipFeedback())
            self.show_error(
                f"Cannot open the brush window: {error}", details=traceback.format_exc(), title="Feedback round skipped"
            )

    def _round_cost(self) -> RoundCost:
        """What the next fine-tune round will cost here (shown beside Done, with a shorter round)."""
        config = self.session.finetune_config if self.session is not None else self.finetune_config
        batch_size = self.controller.sizes.batch_size if self.controller.sizes is not None else 0
        step_s = step_seconds(
            self.progress.step_timer.seconds_per_step, self.progress.eta.seconds_per_batch, batch_size, config.replay_batch
        )
        return round_cost(config.max_steps, step_s, getattr(self, "device", "") or "this device")

    def _mask_save_failed(self, message: str) -> None:
        """The brush window was closed from outside and could not save: tell the user (the
        dialog when the app stays open, the terminal when it is quitting)."""
        self.log.append(message, "error")
        if self.closed or self.closing:
            sys.stderr.write(f"saliency-steering: {message}\n")
        else:
            self.show_error(message, title="Paint not saved")

    def _on_reasonability(self, event: msg.ReasonabilityReady) -> None:
        self.reasonability = event
        self.reasonability_button.state(["!disabled"])
        self._log(reasonability_note(event))
        self.rounds.refresh_reasonability(event)

    # ------------------------------------------------------------------------------ gallery
    def _brush_open(self) -> bool:
        return self.rounds.brush_is_open() and self.trainer is not None

    def _cells(self) -> Dict[str, Any]:
        """The reasonability matrix's cells (cell -> relpaths) for the gallery's filter."""
        return dict(self.reasonability.matrix.members) if self.reasonability is not None else {}

    def on_gallery(self) -> None:
        """Brush window's "Gallery...": ask the trainer for the images and their predictions."""
        if not self._brush_open():
            return
        self.status_var.set("Listing the training images for the gallery...")
        self.trainer.submit(msg.DescribeImages())

    def on_main_gallery(self) -> Any:
        """The main window's "Gallery...": during a round, the trainer's listing (with
        predictions); otherwise the session's folder as it is on disk."""
        if self._brush_open():
            self.on_gallery()
            return None
        if self.session is None:
            return None
        session = self.session
        return self.rounds.open_gallery(
            list_folder(session.train_dir),
            session.train_dir,
            cells=self._cells(),
            masked=session.masks.annotated,
            on_paint=self.paint_images,
        )

    def on_discover(self) -> Any:
        """The "Discover..." button: the discovery window on the session's committed model (issue 20)."""
        session = self.session
        if session is None or not session.checkpoint_path.is_file():
            self.status_var.set("Discovery needs a trained model: train, or open a session.")
            return None
        return DiscoveryWindow(
            self.master, str(session.checkpoint_path), session.train_dir, on_paint=self.paint_images,
            device_name="auto", geometry_store=self.geometry_store,
        )  # fmt: skip

    def paint_images(self, relpaths: Sequence[str]) -> bool:
        """Open these training images in the brush window (gallery, reasonability window,
        propagation preview). Painting happens in a feedback round: without one waiting, the
        images are queued and open with the next round's brush window (False)."""
        if not relpaths:
            return False
        if not self._brush_open():
            status, note = self.controller.queue_paint(relpaths)
            self.status_var.set(status)
            self._log(note)
            return False
        self.log.append(f"Opening {plural(len(relpaths), 'image')} for painting...")
        self.trainer.submit(msg.PrepareImages(tuple(relpaths)))
        return True

    def _on_images_described(self, event: msg.ImagesDescribed) -> None:
        self._set_state(self.state)  # the status line back
        if not self._brush_open() or self.session is None:
            return
        session = self.session
        self.rounds.open_gallery(
            event.entries,
            session.train_dir,
            cells=self._cells(),
            masked=session.masks.annotated,
            on_paint=self.paint_images,
            n_train=event.n_train,
            replace=True,
        )

    def _on_images_prepared(self, event: msg.ImagesPrepared) -> None:
        if event.missing:
            self.log.append(f"Not training images, skipped: {', '.join(event.missing[:5])}", "warning")
        if not self._brush_open() or not event.items:
            return
        added = self.brush_window.add_items(event.items)
        self.brush_window.lift()
        self.log.append(f"Brush window: {plural(added, 'image')} added to paint")

    # ------------------------------------------------------------------------------ propagation
    def _on_propagation_preview(self, event: msg.PropagationPreview) -> None:
        self.log.append(f"Propagation preview ({event.scope}) from {', '.join(event.sources)}: {event.count} images")
        panel = self.rounds.propagation_panel()
        if panel is not None:
            panel.show_preview(event)

    def _on_propagation_applied(self, event: msg.PropagationApplied) -> None:
        self.log.append(f"Propagated ({event.scope}) the red of {', '.join(event.sources)} to {event.written} images")
        panel = self.rounds.propagation_panel()
        if panel is not None:
            panel.show_applied(event)

    def _on_propagation_progress(self, event: msg.PropagationProgress) -> None:
        panel = self.rounds.propagation_panel()
        if panel is not None:
            panel.show_progress(event)

    def _on_preview_page(self, event: msg.PreviewPageItems) -> None:
        panel = self.rounds.propagation_panel()
        if panel is not None:
            panel.show_page(event)

    def _on_propagation_failed(self, event: msg.PropagationFailed) -> None:
        if event.cancelled:
            self.log.append(f"Propagation ({event.scope}): {event.message}")
        else:
            self.log.append(f"Propagation ({event.scope}) failed: {event.message}", "warning" if event.user_error else "error")
        if event.details:
            self.log.append(event.details, "error")
        panel = self.rounds.propagation_panel()
        if panel is not None:
            panel.show_failed(event)

    # ------------------------------------------------------------------------------ fine-tune rounds
    def _on_finetune_started(self, event: msg.FinetuneStarted) -> None:
        self.progress.finetune_started(event.round, event.max_steps)
        self.log.append(f"Fine-tune round {event.round}: {event.n_annotated} annotated images, at most {event.max_steps} steps")

    def _on_finetune_step(self, event: msg.FinetuneStep) -> None:
        self.progress.finetune_step(event.round, event.step, event.max_steps)

    def _on_finetune_progress(self, event: msg.FinetuneProgress) -> None:
        self.progress.finetune_progress(event.round, event.step, event.max_steps, event.guidance, event.val_loss)

    def _on_finetune_done(self, event: msg.FinetuneDone) -> None:
        self.progress.finetune_finished(event.round, event.report.steps, event.report.stop_text)
        self._log(self.controller.on_finetune_done(event))
        if not round_can_open(self.closing, self.trainer):
            return
        trainer = self.trainer

        def decide(command: Any) -> None:
            self.rounds.chooser = None
            trainer.submit(command)

        try:
            self.rounds.open_chooser(event, lambda: decide(msg.Commit()), lambda: decide(msg.Reject()))
        except Exception as error:  # noqa: BLE001 -- never leave the trainer waiting
            log.exception("cannot open the chooser")
            self.rounds.chooser = None
            trainer.submit(msg.Reject())  # the safe choice: weights stay as before the round
            self.show_error(
                f"Cannot show the comparison, so the round was rejected: {error}",
                details=traceback.format_exc(),
                title="Round rejected",
            )

    def _on_round_decided(self, event: msg.RoundDecided) -> None:
        mark, note = self.controller.on_round_decided(event)
        self.plots.add_round(mark.round, mark.epoch, mark.committed, mark.finetuned, mark.val_loss, mark.val_accuracy)
        self._log(note)

    # ------------------------------------------------------------------------------ run states
    def _on_state(self, event: msg.StateChanged) -> None:
        state = shown_state(self.state, event.state)
        if state is not None:
            self._set_state(state)

    def _on_checkpoint(self, event: msg.CheckpointSaved) -> None:
        self.log.append(f"Checkpoint saved (epoch {event.epoch})", "debug")

    def _on_finished(self, event: msg.TrainingFinished) -> None:
        state, note = self.controller.on_finished(event)
        self._log(note)
        self.rounds.close_round()
        self._set_state(state)
        self._update_session_label()

    def _on_failed(self, event: msg.TrainingFailed) -> None:
        notes, title = self.controller.on_failed(event)
        self._log(*notes)
        self.rounds.close_round()
        self._discard_fresh_session(self.session)
        self._set_state(RunState.FAILED)
        if not self.closing:
            self.show_error(event.message, details=event.details, user_error=event.user_error, title=title)

    def _on_log_line(self, event: LogLine) -> None:
        self.log.append(event.text, event.level)

    def _on_demo_ready_event(self, event: DemoReady) -> None:
        self._on_demo_ready(event.root)

    def _on_demo_failed(self, event: DemoFailed) -> None:
        self._stop_indeterminate()
        self.log.append(event.message, "error")
        self._set_state(RunState.IDLE)
        if not self.closing:
            self.show_error(event.message, details=event.details, user_error=True)

    _handlers: Dict[type, Callable[["MainWindow", Any], None]] = {
        msg.RunStarted: _on_run_started,
        msg.BatchFinished: _on_batch,
        msg.EpochFinished: _on_epoch,
        msg.FeedbackNeeded: _on_feedback,
        msg.ReasonabilityReady: _on_reasonability,
        msg.PropagationPreview: _on_propagation_preview,
        msg.PropagationApplied: _on_propagation_applied,
        msg.PropagationFailed: _on_propagation_failed,
        msg.PropagationProgress: _on_propagation_progress,
        msg.PreviewPageItems: _on_preview_page,
        msg.FinetuneStarted: _on_finetune_started,
        msg.FinetuneProgress: _on_finetune_progress,
        msg.FinetuneStep: _on_finetune_step,
        msg.ImagesDescribed: _on_images_described,
        msg.ImagesPrepared: _on_images_prepared,
        msg.FinetuneDone: _on_finetune_done,
        msg.RoundDecided: _on_round_decided,
        msg.StateChanged: _on_state,
        msg.CheckpointSaved: _on_checkpoint,
        msg.TrainingFinished: _on_finished,
        msg.TrainingFailed: _on_failed,
        LogLine: _on_log_line,
        DemoReady: _on_demo_ready_event,
        DemoFailed: _on_demo_failed,
    }

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
