"""What the main window does with each engine event: progress and plots, feedback rounds (the
brush window, the chooser), the gallery's listings, propagation answers, run states and ends.

`EngineEvents` is the part of `MainWindow` (`ui.main_window.window`) that the `EventPump` calls,
on the Tk thread, with each event the trainer's thread put on `self.events`: `handle_event` looks
up the event's type in `_handlers`. Bookkeeping and log lines are
`ui.main_window.run_controller.RunController`'s; opening and closing the round's windows is
`ui.main_window.round_windows.RoundWindows`'. A mixin, split out of the window only to keep one
concept per file.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any, Callable, Dict, Optional, Sequence

from app.run import messages as msg
from app.run.run_state import RunState
from ui.helpers.gallery_filter import scan_folder
from ui.helpers.round_cost import RoundCost, round_cost, step_seconds
from ui.helpers.wording import plural
from ui.widgets.log_pane import LogLine
from ui.windows.discovery_window import DiscoveryWindow

from .demo_preparation import DemoFailed, DemoReady
from .round_rules import paint_cancelled, paint_done, reasonability_note, round_can_open
from .run_controller import Note, shown_state

log = logging.getLogger(__name__)

__all__ = ["EngineEvents"]


class EngineEvents:
    """The engine's events applied to `MainWindow`'s widgets (a mixin)."""

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
        self._log_held_notes()

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
        listing = scan_folder(session.train_dir)  # unreadable files left out, and named
        return self.rounds.open_gallery(
            listing.entries,
            session.train_dir,
            cells=self._cells(),
            masked=session.masks.annotated,
            on_paint=self.paint_images,
            unreadable=listing.unreadable,
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
        annotated = plural(event.n_annotated, "annotated image")
        self.log.append(f"Fine-tune round {event.round}: {annotated}, at most {event.max_steps} steps")

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
        done = f"epoch {event.epoch}" if event.epoch else "no epoch ended yet"
        note = Note(f"Checkpoint saved ({done})", "debug")
        # The trainer saves an epoch's checkpoint before it reports the epoch (the epoch
        # counts only once saved); the log reads in the user's order: the epoch's line first.
        if event.epoch and event.epoch > self.controller.epochs_done:
            self.held_notes.append(note)
        else:
            self._log(note)
        self.update_discover_button()  # a model to explain now

    def _log_held_notes(self) -> None:
        """The lines held back until the epoch they belong to was logged (or the run ended)."""
        notes, self.held_notes = self.held_notes, []
        self._log(*notes)

    def _on_finished(self, event: msg.TrainingFinished) -> None:
        state, note = self.controller.on_finished(event)
        self._log_held_notes()
        self._log(note)
        if event.stopped:
            self.progress.run_stopped()
        self.rounds.close_round()
        self._set_state(state)
        self._update_session_label()

    def _on_failed(self, event: msg.TrainingFailed) -> None:
        notes, title = self.controller.on_failed(event)
        self._log_held_notes()
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

    _handlers: Dict[type, Callable[["EngineEvents", Any], None]] = {
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
