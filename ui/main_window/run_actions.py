"""The main window's actions: Train (and what it may ask first: more epochs, the demo data),
Pause / Resume, Stop, and the sessions (open, reopen the last, new), with the trust banner's
remedies (a smaller model, a weights file).

`RunActions` is the part of `MainWindow` (`ui.main_window.window`) behind those buttons. The
decisions are `ui.main_window.run_controller.RunController`'s (pure, tested without a display);
these methods ask it and apply the answer to the widgets. A mixin, split out of the window only
to keep one concept per file.
"""

from __future__ import annotations

import logging
from tkinter import filedialog
from typing import Any, Optional, Sequence

from app.engine.config import TrainConfig
from app.errors import UserError
from app.run import messages as msg
from app.run.run_state import RunState
from app.run.session import recent_sessions
from ui.tk_support.quiet_teardown import destroy
from ui.windows.dialogs import ConfirmDialog, MoreEpochsDialog
from ui.windows.sessions_dialog import SessionsDialog

from .demo_preparation import demo_folders, demo_is_ready, demo_target, start_demo_preparation
from .run_controller import AskMoreEpochs, PrepareDemo, RefuseTrain, more_epochs
from .settings_form import FormError

log = logging.getLogger(__name__)

__all__ = ["PAUSE_TEXT", "RESUME_TEXT", "RunActions"]

PAUSE_TEXT = "Pause"  # plain words: the pause symbol is missing from common X fonts
RESUME_TEXT = "Resume"


class RunActions:
    """Train / Pause / Stop and the sessions of `MainWindow` (a mixin)."""

    # ------------------------------------------------------------------------------ trust remedies
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
        total = getattr(session.train_config, "epochs", 0)  # the x range: the session's epochs, not those done
        self.plots.set_history(epochs, rounds, last_epoch=total)
        self.progress.reset()  # the bars and times of whatever ran before belong to no opened session
        self._update_session_label()
        self._log(self.controller.opened_note(session, rounds))

    def on_new_session(self) -> None:
        """Forget the opened session: the next Train starts a fresh one."""
        if self.running:
            return
        note = self.controller.forget_session()
        self.settings.forget_filled_folders()  # the demo's folders, filled in by its run
        self.trust_banner.show(())
        self.plots.clear()
        self.progress.reset()
        self._forget_reasonability()
        self._update_session_label()
        self._set_state(RunState.IDLE)  # not "Stopped" / "Failed": that was the other session's run
        self._log(note)

    def _discard_fresh_session(self, session: Any) -> None:
        """Remove the folder of a session this Train made if it holds nothing yet."""
        if self.controller.discard_fresh_session(session):
            self.log.append(f"Removed the empty session folder {session.folder}", "debug")
            self._update_session_label()

    def _forget_reasonability(self) -> None:
        self.reasonability = None
        self.reasonability_button.state(["disabled"])
