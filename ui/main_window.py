"""The main window: settings, Train / Pause / Stop, progress, live plots, log and status bar.

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
from dataclasses import dataclass
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any, Callable, Dict, Optional, Sequence

from app.engine.config import FinetuneConfig, TrainConfig
from app.errors import UserError
from app.run import messages as msg
from app.run.run_state import ENDED_STATES, RunState

from .chooser_window import ChooserWindow
from .dialogs import ErrorDialog
from .event_pump import EventPump
from .log_pane import LogLine, LogPane, QueueLogHandler
from .plots import PlotsPanel
from .progress_panel import ProgressPanel
from .run_controls import controls_for
from .scrollable import ScrollableFrame
from .settings_panel import DEFAULT_CONFIG, FormError, SettingsPanel
from .trust_banner import TrustBanner
from .wording import plural

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 60.0  # how long closing waits for the trainer thread before giving up
STOPPING_NOTE_AFTER_MS = 300  # show "Stopping..." when the thread takes longer than this

PAUSE_TEXT = "Pause"  # plain words: the pause symbol is missing from common X fonts
RESUME_TEXT = "Resume"


@dataclass(frozen=True)
class DemoReady:
    """Private event: the demo data exists at `root` (posted by the preparation thread)."""

    root: str


@dataclass(frozen=True)
class DemoFailed:
    message: str
    details: str = ""


TrainerFactory = Callable[..., Any]


def _default_trainer_factory(config, finetune_config, paths, *, emit, session):  # type: ignore[no-untyped-def]
    from app.run.trainer import Trainer  # imported late: torch is slow to import

    return Trainer(config, finetune_config, paths, emit=emit, session=session)


class MainWindow(ttk.Frame):
    """The app's main window, packed into `master` (normally the `tk.Tk` root)."""

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
    ) -> None:
        super().__init__(master, padding=6)
        self.root = master
        self.sessions_root = sessions_root
        self.demo_dir = demo_dir
        self.demo_shortcut = demo_shortcut  # which built-in demo a blank data folder means
        self.finetune_config = finetune_config
        self.trainer_factory = trainer_factory
        self.join_timeout_s = join_timeout_s
        self.destroy_root_on_close = destroy_root_on_close
        self.geometry_store = geometry_store  # ui.window_geometry.GeometryStore, or None

        self.events: "queue.Queue[Any]" = queue.Queue()
        self.trainer: Any = None
        self.thread: Optional[threading.Thread] = None
        self.session: Any = None  # app.Session of the current / last run
        self.resume_session: Any = None  # set by "Open session...": Train resumes it
        self.state = RunState.IDLE
        self.paused = False
        self.closing = False
        self.closed = False
        self.device = ""
        self.brush_window: Any = None
        self.chooser_window: Optional[ChooserWindow] = None
        self.reasonability: Optional[msg.ReasonabilityReady] = None  # the latest matrix
        self.reasonability_window: Any = None
        self.gallery_window: Any = None
        self.paint_queue: list = []  # relpaths chosen between rounds: opened at the next one
        self.error_dialog: Optional[ErrorDialog] = None
        self.last_failure: Optional[msg.TrainingFailed] = None
        self.finished: Optional[msg.TrainingFinished] = None
        self.event_counts: Counter = Counter()  # handled events per type name (tests, benches)
        self.listeners: list = []  # callables(event) called after each event is handled
        self._after_ids: Dict[str, str] = {}
        self._close_started = 0.0
        self._epochs = 1
        self.epochs_done = 0  # last completed epoch of the current session
        self._fresh_session = False  # the running session was made by this Train
        self.more_epochs_dialog: Any = None
        self._last_report: Any = None  # the FinetuneReport of the round being decided
        self._sizes: Any = None  # app.engine.trust_checks.DataSizes of the run
        self._epoch_records: list = []  # per-epoch dicts for the trust rules
        self.trust_warnings: list = []
        self._run_config: Optional[TrainConfig] = None

        master.title("Saliency steering")
        master.protocol("WM_DELETE_WINDOW", self.on_close)
        self._build()
        self.pack(fill="both", expand=True)

        self.log_handler = QueueLogHandler(self.events, level=logging.WARNING)
        # The image scan warns per skipped file and once more in sum; RunStarted lists the
        # skipped files once, so the scan's own warnings would show each file three times.
        self.log_handler.addFilter(lambda record: record.name != "datasets.image_folder")
        for name in ("app", "datasets", "models", "loss"):
            logging.getLogger(name).addHandler(self.log_handler)

        self.pump = EventPump(self, self.events, self.handle_event)
        self.pump.start()
        self._set_state(RunState.IDLE)
        if session_dir:
            self.open_session(session_dir)
        elif data_dir:
            self.settings.vars["train_dir"].set(data_dir)

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

        # The settings column scrolls when the screen is short (1280 x 720); the progress
        # bars live under the plots, always in view.
        self.left_column = ScrollableFrame(top)
        self.left_column.pack(side="left", fill="y", padx=(0, 8))
        left = self.left_column.body
        self.settings = SettingsPanel(left, base_config=DEFAULT_CONFIG)
        self.settings.pack(fill="x")

        buttons = ttk.Frame(left, padding=(0, 8))
        buttons.pack(fill="x")
        self.train_button = ttk.Button(buttons, text="\u25b6 Train", command=self.on_train)
        self.pause_button = ttk.Button(buttons, text=PAUSE_TEXT, command=self.on_pause)
        self.stop_button = ttk.Button(buttons, text="\u25a0 Stop", command=self.on_stop)
        for button in (self.train_button, self.pause_button, self.stop_button):
            button.pack(side="left", padx=(0, 6))
        self.reasonability_button = ttk.Button(buttons, text="Reasonability...", command=self.on_reasonability)
        self.reasonability_button.pack(side="right")
        self.gallery_button = ttk.Button(buttons, text="Gallery...", command=self.on_main_gallery)
        self.gallery_button.pack(side="right", padx=(0, 6))
        self.gallery_button.state(["disabled"])  # until there is a session
        self.reasonability_button.state(["disabled"])  # until the first matrix arrives

        session_frame = ttk.LabelFrame(left, text="Session", padding=6)
        session_frame.pack(fill="x")
        self.session_var = tk.StringVar(self, value="New session on Train")
        self.session_label = ttk.Label(session_frame, textvariable=self.session_var, wraplength=420, justify="left")
        self.session_label.pack(fill="x")
        session_buttons = ttk.Frame(session_frame)
        session_buttons.pack(fill="x", pady=(4, 0))
        self.open_session_button = ttk.Button(session_buttons, text="Open session...", command=self.on_open_session)
        self.open_session_button.pack(side="left")
        self.new_session_button = ttk.Button(session_buttons, text="New session", command=self.on_new_session)
        self.new_session_button.pack(side="left", padx=(6, 0))

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

    # ------------------------------------------------------------------------------ trust
    def _place_banner(self) -> None:
        self.trust_banner.pack(fill="x", before=self.plots, pady=(0, 6))

    def _check_trust(self) -> None:
        """Re-run the trust rules on the epochs so far; show or hide the banner."""
        from app.engine.trust_checks import trust_warnings

        if self._sizes is None:
            self.trust_banner.show(())
            return
        warnings = trust_warnings(self._epoch_records, self._sizes, self.epochs_done or None)
        changed = [w.code for w in warnings] != [w.code for w in self.trust_warnings]
        self.trust_warnings = warnings
        self.trust_banner.show(warnings)
        if warnings and changed:
            for warning in warnings:
                self.log.append(f"Warning: {warning.title}: {warning.detail}. {warning.advice}", "warning")

    def _trust_note(self) -> str:
        """One line for the brush window when the predictions it shows may mean nothing."""
        if not self.trust_warnings:
            return ""
        return f"Predictions and confidences may mean nothing: {self.trust_warnings[0].title.lower()} (see the main window)"

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

    def _update_session_label(self) -> None:
        self.gallery_button.state(["!disabled"] if self.session is not None else ["disabled"])
        self._update_session_text()

    def _update_session_text(self) -> None:
        if self.resume_session is not None:
            done = f", {self.epochs_done} epoch{'s' if self.epochs_done != 1 else ''} done" if self.epochs_done else ""
            self.session_var.set(
                f"{self.resume_session.folder}\n(Train continues this session{done}; New session starts another)"
            )
        elif self.session is not None:
            self.session_var.set(f"{self.session.folder}")
        else:
            self.session_var.set("New session on Train")

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
        if self.resume_session is not None and not self._same_folders(values):
            self.show_error(
                f"This session trains on {self.resume_session.train_dir} (validation: "
                f"{self.resume_session.val_dir or 'held out from it'}). Put those folders back "
                "to resume it, or press New session to train on other data.",
                user_error=True,
                title="The session uses other data",
            )
            return False
        session_model = getattr(getattr(self.resume_session, "train_config", None), "model", None)
        if self.resume_session is not None and self.epochs_done and session_model and values.config.model != session_model:
            self.show_error(
                f"This session trains {session_model}; its checkpoint cannot become "
                f"{values.config.model}. Put {session_model} back to continue it, or press New "
                "session to train the other model.",
                user_error=True,
                title="The session uses another model",
            )
            return False
        if self.resume_session is not None and values.config.epochs <= self.epochs_done:
            self._ask_more_epochs(values)
            return False
        if values.train_dir is None and self.resume_session is None:
            self._prepare_demo_then_train()
            return True
        return self._start_run(values.train_dir, values.val_dir, values.config)

    def _ask_more_epochs(self, values) -> None:
        """The session's epochs are used up: offer to add more (the form's Epochs is the
        total, so "more" raises it), instead of a run that does nothing."""
        from .dialogs import MoreEpochsDialog

        if self.more_epochs_dialog is not None:
            try:
                self.more_epochs_dialog.destroy()
            except tk.TclError:
                pass
        done = self.epochs_done
        suggested = max(1, min(done, 20))  # as many again, within reason

        def accept(more: int) -> None:
            self.more_epochs_dialog = None
            self.settings.vars["epochs"].set(str(done + more))
            self.log.append(f"Adding {more} epoch{'s' if more != 1 else ''}: epochs {done + 1}-{done + more} of this session")
            self.on_train()

        def dismiss() -> None:
            self.more_epochs_dialog = None

        self.more_epochs_dialog = MoreEpochsDialog(self.root, done, suggested, accept, dismiss)

    def _same_folders(self, values) -> bool:
        """Do the form's folders match those of the session being resumed?"""

        def same(a: Optional[str], b: Optional[str]) -> bool:
            if not a or not b:
                return not a and not b
            return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()

        session = self.resume_session
        return same(values.train_dir, session.train_dir) and same(values.val_dir, session.val_dir)

    def _prepare_demo_then_train(self) -> None:
        from datasets import default_demo_dir

        target = Path(self.demo_dir) if self.demo_dir else default_demo_dir(self.demo_shortcut)
        if (target / "demo.json").is_file():
            self._on_demo_ready(str(target))
            return
        self._set_state(RunState.PREPARING)
        self.log.append(f"Making the demo data in {target} (first run only)...")
        self.progress.epoch_bar.configure(mode="indeterminate")
        self.progress.epoch_bar.start(50)
        events = self.events

        def work() -> None:
            try:
                from datasets import ensure_demo_data

                events.put(DemoReady(str(ensure_demo_data(target, shortcut=self.demo_shortcut))))
            except Exception as error:  # noqa: BLE001 -- reported to the user as a dialog
                events.put(DemoFailed(f"Could not make the demo data: {error}", traceback.format_exc()))

        threading.Thread(target=work, name="demo-data", daemon=True).start()

    def _stop_indeterminate(self) -> None:
        self.progress.epoch_bar.stop()
        self.progress.epoch_bar.configure(mode="determinate", value=0.0)

    def _on_demo_ready(self, root: str) -> None:
        self._stop_indeterminate()
        if self.closing:
            self._set_state(RunState.IDLE)
            return
        values = self._pending_values
        val_dir = values.val_dir or str(Path(root) / "val")
        self._set_state(RunState.IDLE)
        self._start_run(str(Path(root) / "train"), val_dir, values.config)

    def _start_run(self, train_dir: Optional[str], val_dir: Optional[str], config: TrainConfig) -> bool:
        from app.run.session import Session, default_sessions_root, new_session_folder

        session = None
        try:
            if self.resume_session is not None:
                session = self.resume_session
                session.update_configs(config)
                self.log.append(f"Resuming session {session.folder}")
            else:
                root = Path(self.sessions_root) if self.sessions_root else default_sessions_root()
                session = Session.create(new_session_folder(root), train_dir, val_dir, config, self.finetune_config)
                self.log.append(f"New session {session.folder}")
                self.plots.clear()
                self._forget_reasonability()
                self.epochs_done = 0
                self._fresh_session = True
                self._epoch_records = []
                self.trust_warnings = []
                self.trust_banner.show(())
            paths = session.run_paths()
            trainer = self.trainer_factory(config, session.finetune_config, paths, emit=self.events.put, session=session)
        except (UserError, OSError, ValueError) as error:
            self._discard_fresh_session(session)
            self.show_error(str(error), user_error=True, title="Cannot start training")
            self._set_state(RunState.IDLE)
            return False
        self.session = session
        self.resume_session = session  # the next Train continues it (New session is explicit)
        self.trainer = trainer
        self.paused = False
        self.finished = None
        self.last_failure = None
        self._epochs = config.epochs
        self._run_config = config
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

    def on_stop(self) -> None:
        """Stop the run (the trainer saves its checkpoint); windows of a round are closed."""
        if self.trainer is None or not self.running:
            return
        self.trainer.stop()
        self.paused = False
        self.pause_button.configure(text=PAUSE_TEXT)
        self._close_round_windows()
        self.log.append("Stopping after the current batch...")
        self._set_state(RunState.STOPPING)

    def on_reasonability(self) -> Any:
        """Open (or raise and refresh) the reasonability window on the latest matrix."""
        if self.reasonability is None:
            return None
        from .reasonability_window import ReasonabilityWindow

        window = self.reasonability_window
        if window is not None and window.winfo_exists():
            window.show(self.reasonability)
            window.deiconify()
            window.lift()
            return window
        self.reasonability_window = ReasonabilityWindow(self.root, self.reasonability, on_paint=self.paint_images)
        return self.reasonability_window

    def on_open_session(self) -> None:
        from app.run.session import default_sessions_root

        root = Path(self.sessions_root) if self.sessions_root else default_sessions_root()
        folder = filedialog.askdirectory(
            parent=self, title="Open a session folder", initialdir=str(root if root.is_dir() else Path.home()), mustexist=True
        )
        if folder:
            self.open_session(folder)

    def open_session(self, folder: str) -> bool:
        """Load a session folder: its settings into the form, its curves and rounds into the
        plots; Train then resumes it. False (with a dialog) when it is not a session."""
        from app.run.session import Session

        if self.running:
            return False
        try:
            session = Session.open(folder)
            epochs = session.epoch_history()
            rounds = session.history()
        except (UserError, OSError, ValueError) as error:
            self.show_error(str(error), user_error=True, title="Cannot open the session")
            return False
        self.resume_session = session
        self.session = session
        self._fresh_session = False
        self.epochs_done = epochs[-1].get("epoch", len(epochs)) if epochs else 0
        self._epoch_records = [dict(row) for row in epochs]
        self._sizes = None  # known again when Train reports the data's sizes
        self.trust_banner.show(())
        self.settings.load(session.train_dir, session.val_dir, session.train_config)
        self.plots.set_history(epochs, rounds)
        self._update_session_label()
        done = epochs[-1].get("epoch", len(epochs)) if epochs else 0
        self.log.append(
            f"Opened session {session.folder}: {done} epochs done, {len(rounds)} "
            f"feedback rounds, {len(session.masks.annotated())} masks"
        )
        return True

    def on_new_session(self) -> None:
        """Forget the opened session: the next Train starts a fresh one."""
        if self.running:
            return
        self.resume_session = None
        self.session = None
        self.epochs_done = 0
        self._fresh_session = False
        self.paint_queue = []
        self._epoch_records = []
        self._sizes = None
        self.trust_warnings = []
        self.trust_banner.show(())
        self.plots.clear()
        self.progress.reset()
        self._forget_reasonability()
        self._update_session_label()

    def _discard_fresh_session(self, session: Any) -> None:
        """Remove the folder of a session this Train made if it holds nothing yet."""
        if session is None or not self._fresh_session:
            return
        self._fresh_session = False
        if session.discard_if_empty():
            self.log.append(f"Removed the empty session folder {session.folder}", "debug")
            if self.resume_session is session:
                self.resume_session = None
            if self.session is session:
                self.session = None
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
        from app.engine.trust_checks import DataSizes

        config = self._run_config or DEFAULT_CONFIG
        self._sizes = DataSizes(
            event.n_train,
            event.n_val,
            len(event.classes),
            config.batch_size,
            config.model,
            tuple(getattr(event, "class_counts", ()) or ()),
        )
        self.device = event.device
        self.device_var.set(f"Device: {event.device}")
        self._epochs = event.epochs
        self.progress.run_started(event.first_epoch, event.epochs, event.batches_per_epoch)
        self.plots.set_run_range(event.epochs)
        self.log.append(
            f"Training on {event.device}: {event.n_train} training and {event.n_val} "
            f"validation images, {len(event.classes)} classes, epochs "
            f"{event.first_epoch}-{event.epochs}"
        )
        if event.skipped:
            self.log.append(
                f"{plural(len(event.skipped), 'image')} {'was' if len(event.skipped) == 1 else 'were'} skipped (unreadable):",
                "warning",
            )
            for relpath, reason in event.skipped[:20]:
                self.log.append(f"  {relpath}: {reason}", "warning")
            if len(event.skipped) > 20:
                self.log.append(f"  ... and {len(event.skipped) - 20} more", "warning")

    def _on_batch(self, event: msg.BatchFinished) -> None:
        self.progress.batch_done(event.epoch, event.batch, event.batches, self._epochs)
        self.plots.add_batch(
            event.epoch, event.batch, event.batches, event.loss, event.accuracy, getattr(event, "ce", float("nan"))
        )

    def _on_epoch(self, event: msg.EpochFinished) -> None:
        self.epochs_done = max(self.epochs_done, event.epoch)
        self._fresh_session = False  # it has a checkpoint now: never discarded
        self.progress.epoch_done(event.epoch, event.epochs, event.seconds)
        self.plots.add_epoch(event.epoch, event.train, event.val)
        self._epoch_records = [r for r in self._epoch_records if r.get("epoch") != event.epoch]
        self._epoch_records.append({"epoch": event.epoch, "train": dict(event.train), "val": dict(event.val)})
        self._check_trust()
        train, val = event.train, event.val
        self.log.append(
            f"Epoch {event.epoch}/{event.epochs}: train loss {train.get('loss', float('nan')):.4f}"
            f", acc {train.get('accuracy', float('nan')):.1%}; val loss "
            f"{val.get('loss', float('nan')):.4f}, acc {val.get('accuracy', float('nan')):.1%} "
            f"({event.seconds:.1f} s)"
        )

    def _on_feedback(self, event: msg.FeedbackNeeded) -> None:
        if self.closing or self.trainer is None or self.trainer.stopping:
            return
        self.log.append(
            f"Feedback round {event.round} after epoch {event.epoch}: {len(event.items)} images chosen by {event.strategy}"
        )
        from .brush_window import BrushWindow  # imported late: it is a sibling's module

        trainer = self.trainer

        masks = self.session.masks

        def done(relpaths: Sequence[str]) -> None:
            self.brush_window = None
            if trainer.stopping:
                return
            if not relpaths and not masks.annotated():
                # a 0-step round would open a chooser comparing nothing (two black panels)
                self.log.append("Nothing painted, so nothing to fine-tune; training resumes")
                self.status_var.set("Nothing painted: nothing to fine-tune. Training resumes.")
                trainer.submit(msg.SkipFeedback())
                return
            self.log.append(f"Painted {plural(len(relpaths), 'image')}; fine-tuning...")
            trainer.submit(msg.StartFinetune(tuple(relpaths)))

        def cancel() -> None:
            self.brush_window = None
            if trainer.stopping:
                return
            self.log.append("Painting cancelled; training continues unchanged")
            trainer.submit(msg.SkipFeedback())

        try:
            self.brush_window = BrushWindow(
                self.root,
                event.items,
                self.session.masks,
                round_number=event.round,
                on_done=done,
                on_cancel=cancel,
                submit=trainer.submit,
                on_save_failed=self._mask_save_failed,
                trust_note=self._trust_note(),
                on_gallery=self.on_gallery,
                on_open_images=self.paint_images,
                geometry_store=self.geometry_store,
            )
            if self.paint_queue:  # chosen between rounds (gallery, reasonability window)
                queued, self.paint_queue = tuple(self.paint_queue), []
                self.log.append(f"Opening the {plural(len(queued), 'queued image')} as well")
                trainer.submit(msg.PrepareImages(queued))
        except Exception as error:  # noqa: BLE001 -- never leave the trainer waiting for paint
            log.exception("cannot open the brush window")
            self.brush_window = None
            trainer.submit(msg.SkipFeedback())
            self.show_error(
                f"Cannot open the brush window: {error}", details=traceback.format_exc(), title="Feedback round skipped"
            )

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
        matrix = event.matrix
        total = matrix.n_images
        bad = matrix.counts.get("accurate_unreasonable", 0)
        self.log.append(
            f"Reasonability before round {event.round}: {bad} of {total} judged "
            f"images are right for the wrong reason (Reasonability... shows them)"
        )
        window = self.reasonability_window
        if window is not None:
            try:
                if window.winfo_exists():
                    window.show(event)
            except tk.TclError:
                self.reasonability_window = None

    # ------------------------------------------------------------------------------ gallery
    def _brush_open(self) -> bool:
        brush = self.brush_window
        try:
            return brush is not None and bool(brush.winfo_exists()) and self.trainer is not None
        except tk.TclError:
            return False

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
        from .gallery_filter import list_folder
        from .gallery_window import GalleryWindow

        entries = list_folder(self.session.train_dir)
        cells = dict(self.reasonability.matrix.members) if self.reasonability is not None else {}
        self.gallery_window = GalleryWindow(
            self.root,
            entries,
            self.session.train_dir,
            cells=cells,
            masked=self.session.masks.annotated,
            on_paint=self.paint_images,
            store=self.geometry_store,
        )
        return self.gallery_window

    def paint_images(self, relpaths: Sequence[str]) -> bool:
        """Open these training images in the brush window (gallery, reasonability window,
        propagation preview). Painting happens in a feedback round: without one waiting, the
        images are queued and open with the next round's brush window (False)."""
        if not relpaths:
            return False
        if not self._brush_open():
            for relpath in relpaths:
                if relpath not in self.paint_queue:
                    self.paint_queue.append(relpath)
            self.status_var.set(
                f"{plural(len(self.paint_queue), 'image')} queued: they open in the brush window at the next feedback round"
            )
            self.log.append(f"Queued {plural(len(relpaths), 'image')} for painting at the next feedback round")
            return False
        self.log.append(f"Opening {plural(len(relpaths), 'image')} for painting...")
        self.trainer.submit(msg.PrepareImages(tuple(relpaths)))
        return True

    def _on_images_described(self, event: msg.ImagesDescribed) -> None:
        from .gallery_window import GalleryWindow

        self._set_state(self.state)  # the status line back
        if not self._brush_open() or self.session is None:
            return
        window = self.gallery_window
        try:
            if window is not None and window.winfo_exists():
                window.destroy()
        except tk.TclError:
            pass
        cells = dict(self.reasonability.matrix.members) if self.reasonability is not None else {}
        masks = self.session.masks
        self.gallery_window = GalleryWindow(
            self.root,
            event.entries,
            self.session.train_dir,
            cells=cells,
            masked=masks.annotated,
            on_paint=self.paint_images,
            n_train=event.n_train,
            store=self.geometry_store,
        )

    def _on_images_prepared(self, event: msg.ImagesPrepared) -> None:
        if event.missing:
            self.log.append(f"Not training images, skipped: {', '.join(event.missing[:5])}", "warning")
        if not self._brush_open() or not event.items:
            return
        added = self.brush_window.add_items(event.items)
        self.brush_window.lift()
        self.log.append(f"Brush window: {plural(added, 'image')} added to paint")

    def _propagation_panel(self) -> Any:
        brush = self.brush_window
        panel = getattr(brush, "propagation", None)
        try:
            return panel if panel is not None and panel.winfo_exists() else None
        except tk.TclError:
            return None

    def _on_propagation_preview(self, event: msg.PropagationPreview) -> None:
        self.log.append(f"Propagation preview ({event.scope}) from {', '.join(event.sources)}: {event.count} images")
        panel = self._propagation_panel()
        if panel is not None:
            panel.show_preview(event)

    def _on_propagation_applied(self, event: msg.PropagationApplied) -> None:
        self.log.append(f"Propagated ({event.scope}) the red of {', '.join(event.sources)} to {event.written} images")
        panel = self._propagation_panel()
        if panel is not None:
            panel.show_applied(event)

    def _on_propagation_failed(self, event: msg.PropagationFailed) -> None:
        self.log.append(f"Propagation ({event.scope}) failed: {event.message}", "warning" if event.user_error else "error")
        if event.details:
            self.log.append(event.details, "error")
        panel = self._propagation_panel()
        if panel is not None:
            panel.show_failed(event)

    def _on_finetune_started(self, event: msg.FinetuneStarted) -> None:
        self.progress.finetune_started(event.round, event.max_steps)
        self.log.append(f"Fine-tune round {event.round}: {event.n_annotated} annotated images, at most {event.max_steps} steps")

    def _on_finetune_step(self, event: msg.FinetuneStep) -> None:
        self.progress.finetune_step(event.round, event.step, event.max_steps)

    def _on_finetune_progress(self, event: msg.FinetuneProgress) -> None:
        self.progress.finetune_progress(event.round, event.step, event.max_steps, event.guidance, event.val_loss)

    def _on_finetune_done(self, event: msg.FinetuneDone) -> None:
        report = self._last_report = event.report
        self.progress.finetune_finished(event.round, report.steps, report.stop_text)
        self.log.append(
            f"Fine-tune round {event.round} done after {report.steps} steps ({report.stop_text}): "
            f"val acc {report.val_accuracy_before:.1%} -> {report.val_accuracy_after:.1%}, "
            f"saliency on red {report.red_share_before:.1%} -> {report.red_share_after:.1%}"
        )
        if self.closing or self.trainer is None or self.trainer.stopping:
            return
        trainer = self.trainer

        def commit() -> None:
            self.chooser_window = None
            trainer.submit(msg.Commit())

        def reject() -> None:
            self.chooser_window = None
            trainer.submit(msg.Reject())

        try:
            self.chooser_window = ChooserWindow(self.root, event, commit, reject)
        except Exception as error:  # noqa: BLE001 -- never leave the trainer waiting
            log.exception("cannot open the chooser")
            self.chooser_window = None
            trainer.submit(msg.Reject())  # the safe choice: weights stay as before the round
            self.show_error(
                f"Cannot show the comparison, so the round was rejected: {error}",
                details=traceback.format_exc(),
                title="Round rejected",
            )

    def _on_round_decided(self, event: msg.RoundDecided) -> None:
        report = self._last_report if event.finetuned else None
        self.plots.add_round(
            event.round,
            event.epoch,
            event.committed,
            event.finetuned,
            report.val_loss_after if report else float("nan"),
            report.val_accuracy_after if report else float("nan"),
        )
        self._last_report = None
        if event.committed:
            text = "committed: training continues with the fine-tuned weights"
        elif event.finetuned:
            text = "rejected: training continues with the weights from before the round"
        else:
            text = "skipped"
        self.log.append(f"Round {event.round} (after epoch {event.epoch}) {text}")

    def _on_state(self, event: msg.StateChanged) -> None:
        if self.state is RunState.STOPPING and event.state not in ENDED_STATES:
            return  # keep showing "stopping" until the thread says it is done
        self._set_state(event.state)

    def _on_checkpoint(self, event: msg.CheckpointSaved) -> None:
        self.log.append(f"Checkpoint saved (epoch {event.epoch})", "debug")

    def _on_finished(self, event: msg.TrainingFinished) -> None:
        self.finished = event
        if event.stopped:
            self.log.append(f"Stopped after epoch {event.epoch}; session saved")
        else:
            self.log.append(
                f"Training finished: {event.epoch} epochs. Train adds more epochs to this session; New session starts another."
            )
        self._close_round_windows()
        self._set_state(RunState.STOPPED if event.stopped else RunState.FINISHED)
        self._update_session_label()

    def _on_failed(self, event: msg.TrainingFailed) -> None:
        self.last_failure = event
        self.log.append(f"Training failed: {event.message}", "error")
        if event.details:
            self.log.append(event.details, "error")
        self._close_round_windows()
        self._discard_fresh_session(self.session)
        self._set_state(RunState.FAILED)
        if not self.closing:
            title = "Cannot train" if event.user_error else "Training failed"
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
        if self.error_dialog is not None:
            try:
                self.error_dialog.destroy()
            except tk.TclError:
                pass
        self.error_dialog = ErrorDialog(self.root, message, details=details, title=title, user_error=user_error)
        return self.error_dialog

    def _close_round_windows(self) -> None:
        """Close the brush window (saving its paint) and the chooser (deciding nothing: a
        stopped trainer keeps the weights it had before the round)."""
        brush, chooser = self.brush_window, self.chooser_window
        self.brush_window = self.chooser_window = None
        gallery, self.gallery_window = self.gallery_window, None
        if gallery is not None:
            try:
                gallery.destroy()
            except tk.TclError:
                pass
        if brush is not None:
            try:
                if hasattr(brush, "cancel"):
                    brush.cancel()  # saves the mask on screen; its command goes nowhere
                if brush.winfo_exists():
                    brush.destroy()
            except tk.TclError:
                pass
        if chooser is not None:
            try:
                chooser.destroy()
            except tk.TclError:
                pass

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
                self._close_round_windows()
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
            self._after_ids["close_poll"] = self.after(50, self._poll_close)
            return
        if alive:
            log.warning("the training thread did not stop within %.0f s; closing anyway", waited)
        self.teardown()

    def teardown(self) -> None:
        """Cancel timers, detach the log handler and destroy the window (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.closing = True
        self.pump.stop()
        for after_id in self._after_ids.values():
            try:
                self.after_cancel(after_id)
            except tk.TclError:
                pass
        self._after_ids.clear()
        for name in ("app", "datasets", "models", "loss"):
            logging.getLogger(name).removeHandler(self.log_handler)
        self._close_round_windows()
        if self.reasonability_window is not None:
            try:
                self.reasonability_window.destroy()
            except tk.TclError:
                pass
            self.reasonability_window = None
        if self.error_dialog is not None:
            try:
                self.error_dialog.destroy()
            except tk.TclError:
                pass
        try:
            self.progress.epoch_bar.stop()
        except tk.TclError:
            pass
        target = self.root if self.destroy_root_on_close else self
        try:
            target.destroy()
        except tk.TclError:
            pass
