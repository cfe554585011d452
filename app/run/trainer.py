"""The trainer: runs a whole training run in a background thread and talks only in messages.

It never touches a widget. Events go out through the `emit` callback (the app passes
`queue.put`); commands come in through `submit` and the thread-safe `pause`/`resume`/`stop`.
Everything that can fail is reported as a `TrainingFailed` event, never as an exception that
silently kills the thread.

This module holds the run's setup and the epoch loop. The thread control (start, pause, stop,
commands, states) is `app.run.run_control.RunControl`; the data and model are set up as every
path sets them up (`app.engine.run_setup`). Every `feedback_every` epochs the loop hands over to
`app.run.feedback_round` (select, paint, fine-tune, commit or reject) with a narrow view of the
run (`app.run.round_context.RoundContext`); the round answers the brush window's commands with
`app.run.paint_commands` and builds what the windows show with `app.run.display_items`;
`app.run.extra_validation` measures the shortcut-broken and test sets after each epoch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from app.engine.accuracy_change import AccuracyChange
from app.engine.amp import AmpPolicy
from app.engine.batchnorm_recalibration import RECALIBRATION_BATCH, RECALIBRATION_IMAGES, recalibrate_batchnorm
from app.engine.checkpoint import Checkpoint, load_checkpoint, partial_checkpoint_path, save_checkpoint
from app.engine.config import FinetuneConfig, RunPaths, TrainConfig
from app.engine.distributed import SINGLE_PROCESS, DistributedContext, sync_buffers
from app.engine.finite_guard import weights_problem
from app.engine.loops import TrainingDiverged, evaluate, train_one_epoch
from app.engine.run_loaders import build_loaders
from app.engine.run_setup import build_run_model, cache_decoded_images, check_distributed, load_run_data, seed_everything
from app.errors import UserError, out_of_memory_message, user_error_types
from app.run import messages as msg
from app.run.command_inbox import RunStopped
from app.run.extra_validation import ExtraValidation
from app.run.feedback_round import FeedbackRound
from app.run.mask_folder import MaskFolder
from app.run.round_context import RoundContext
from app.run.run_control import RunControl
from app.run.run_lock import acquire_folder_lock, acquire_session_lock
from app.run.run_state import RunState
from models import device_label

logger = logging.getLogger(__name__)


class Trainer(RunControl):
    """One training run. Create, `start()` (or call `run()` in your own thread), drive, `stop()`."""

    def __init__(
        self,
        config: TrainConfig,
        finetune_config: FinetuneConfig,
        paths: RunPaths,
        *,
        emit: Callable[[Any], None],
        session: Any = None,
        distributed: DistributedContext = SINGLE_PROCESS,
    ):
        """`distributed`: this process's place in a torchrun run (`app.engine.distributed`); every rank
        runs a Trainer, rank 0 alone writes the checkpoint."""
        self.config = config
        self.distributed = distributed
        self.finetune_config = finetune_config
        self.paths = paths
        self.session = session
        super().__init__(emit)
        # Filled in by run(); read by tests and the CLI after the thread ends.
        self.model: Optional[torch.nn.Module] = None
        self.data = None
        self.test_data = None  # the shortcut-free test folder (RunPaths.test_dir), if any
        self.history: List[Dict[str, Any]] = []
        self.epoch = 0
        # When masks start guiding a trained model: the shortcut-broken validation of the model
        # it started from (per image), so a run that made it worse can say so (`guidance_change`).
        self.start_broken: Optional[Dict[str, Any]] = None

    # ------------------------------------------------------------------ thread body
    def run(self) -> None:
        """The whole run; blocking. Every outcome ends in TrainingFinished or TrainingFailed."""
        lock = None
        try:
            lock = self._lock_folder()
            self._run()
        except RunStopped:
            self._finish(stopped=True)
        except Exception as error:  # noqa: BLE001 -- the thread must report, not die silently
            if isinstance(error, user_error_types()) or out_of_memory_message(error):
                logger.info("training stopped: %s", error)  # the consumer shows it
                self._set_state(RunState.FAILED)
                self._emit(msg.TrainingFailed(out_of_memory_message(error) or str(error), user_error=True))
                return
            logger.exception("training failed")
            self._set_state(RunState.FAILED)
            self._emit(msg.TrainingFailed(f"{type(error).__name__}: {error}", traceback.format_exc()))
        finally:
            if lock is not None:
                lock.release()

    def _lock_folder(self) -> Any:
        """Hold the session folder (or the checkpoint's folder) against a second writer."""
        if self.session is not None:
            return acquire_session_lock(self.session.folder)
        if self.paths.checkpoint_out:
            return acquire_folder_lock(os.path.dirname(os.path.abspath(self.paths.checkpoint_out)))
        return None

    # ------------------------------------------------------------------ setup
    def _setup(self) -> Tuple[int, int]:
        """Load data and model; returns (first_epoch, last_epoch)."""
        config = self.config
        seed_everything(config.seed)
        self.device = self.distributed.device(config.device)
        amp = AmpPolicy.for_device(config.amp, self.device)
        check_distributed(config, self.distributed)
        checkpoint = load_checkpoint(self.paths.init_checkpoint) if self.paths.init_checkpoint else None
        self._load_data(checkpoint)
        self._build_model(checkpoint, amp)
        self._build_loaders()
        self.validation = ExtraValidation(
            self.data, self.device, self.paths.negatives_dir, self.test_loader, locator=self.config.locator_config()
        )
        first_epoch, last_epoch = self._epoch_range(checkpoint)
        broken = self.validation.broken() if self.guidance_starts and self.distributed.is_main else None
        if broken is not None:  # the cooled head predicts what the checkpoint did
            self.start_broken = broken.evaluate(self.model, self.device, per_image=True)
        self._emit_run_started(first_epoch, last_epoch)
        return first_epoch, last_epoch

    def guidance_change(self) -> Optional[AccuracyChange]:
        """How the run changed shortcut-broken validation accuracy since the model it started from
        (None unless masks started guiding a trained model and a shortcut-broken set exists)."""
        broken = self.validation.broken() if self.start_broken is not None else None
        if broken is None:
            return None
        after = broken.evaluate(self.model, self.device, per_image=True)
        return AccuracyChange.between(self.start_broken["correct"], after["correct"])

    def _load_data(self, checkpoint: Optional[Checkpoint]) -> None:
        """The splits and the test folder (`app.engine.run_setup.load_run_data`), decoded into
        memory while they fit."""
        paths = self.paths
        run_data = load_run_data(
            self.config,
            checkpoint,
            train_dir=paths.train_dir,
            val_dir=paths.val_dir,
            masks_dir=paths.masks_dir,
            test_dir=paths.test_dir,
            warn_masks=self.session is None,  # a session starts unpainted on purpose
        )
        self.data, self.test_data = run_data.splits, run_data.test
        self.input_size, self.mean, self.std = run_data.input_size, run_data.mean, run_data.std
        cache_decoded_images(self.data, self.config)
        self._own_masks()

    def _own_masks(self) -> None:
        """Put the splits' masks behind the one owner of the mask folder (`app.run.mask_folder`):
        the session's, which the brush window writes through too, or one of this run's own."""
        store = self.data.train.masks
        if store is None:
            return
        shared = self.session is not None and self.session.masks.serves(store.masks_dir)
        owner = self.session.masks if shared else MaskFolder(store.masks_dir)
        owner.adopt(store)
        for part in (self.data.train, self.data.val):
            if part.masks is store:
                part.masks = owner

    def _build_model(self, checkpoint: Optional[Checkpoint], amp: AmpPolicy) -> None:
        """The model (the checkpoint's, or a new one), its optimizer, guidance and training step."""
        built = build_run_model(
            self.config,
            checkpoint,
            self.data.train,
            self.device,
            resume=self.paths.resume,
            amp=amp,
            distributed=self.distributed,
        )
        self.model, self.optimizer, self.guidance, self.step = built.model, built.optimizer, built.guidance, built.step
        self.lam, self.finetune_guidance, self.guidance_starts = built.lam, self.config.round_guidance, built.guidance_starts

    def _build_loaders(self) -> None:
        """The training, validation and (with a test folder) test loaders (`app.engine.run_loaders`)."""
        loaders = build_loaders(self.data, self.test_data, self.config, self.device, self.distributed)
        self.train_loader, self.val_loader, self.test_loader = loaders.train, loaders.val, loaders.test

    def _epoch_range(self, checkpoint: Optional[Checkpoint]) -> Tuple[int, int]:
        """(first_epoch, last_epoch) of this run; a resumed run continues the checkpoint's history."""
        start_epoch = checkpoint.epoch if checkpoint is not None else 0
        self.history = list(checkpoint.history) if (checkpoint is not None and self.paths.resume) else []
        self.epoch = start_epoch
        last_epoch = self.config.epochs if self.paths.resume else start_epoch + self.config.epochs
        if last_epoch <= start_epoch:
            raise UserError(
                f"this session has already trained all {start_epoch} of its epochs; set "
                f"Epochs above {start_epoch} (the total) to train more"
            )
        return start_epoch + 1, last_epoch

    def _emit_run_started(self, first_epoch: int, last_epoch: int) -> None:
        train, val = self.data.train, self.data.val
        classes = train.classes
        skipped = tuple(getattr(train, "skipped", ())) + tuple(getattr(val, "skipped", ()))
        targets = np.asarray(train.targets, dtype=np.int64)
        self._emit(
            msg.RunStarted(
                device=device_label(self.device),
                classes=tuple(classes),
                n_train=len(train),
                n_val=len(val),
                first_epoch=first_epoch,
                epochs=last_epoch,
                batches_per_epoch=len(self.train_loader),
                skipped=tuple((str(a), str(b)) for a, b in skipped),
                class_counts=tuple(int(c) for c in np.bincount(targets, minlength=len(classes))),
            )
        )

    def round_context(self) -> RoundContext:
        """What the feedback rounds may use of this run (after `_setup`)."""
        return RoundContext(
            model=self.model,
            data=self.data,
            device=self.device,
            input_size=self.input_size,
            config=self.config,
            finetune_config=self.finetune_config,
            guidance=self.finetune_guidance,
            lam=self.lam,
            val_loader=self.val_loader,
            test_loader=self.test_loader,
            validation=self.validation,
            session=self.session,
            emit=lambda event: self._emit(event),  # late-bound: a test may swap `_emit`
            set_state=self._set_state,
            wait=self._inbox.wait,
            save_checkpoint=self._save_checkpoint,
            stopping=lambda: self.stopping,
            stop_round=self.stop_round,
            cancel_propagation=self.cancel_propagation,
        )

    # ------------------------------------------------------------------ main loop
    def _run(self) -> None:
        self._set_state(RunState.LOADING)
        first_epoch, last_epoch = self._setup()
        rounds = FeedbackRound(self.round_context(), rounds_done=len(self.session.history()) if self.session else 0)
        self._set_state(RunState.TRAINING)
        for epoch in range(first_epoch, last_epoch + 1):
            started = time.monotonic()
            train_metrics = self._train_epoch(epoch)
            val_metrics = self._validate(epoch)
            self.epoch = epoch
            record = {
                "epoch": epoch,
                **{f"train_{k}": v for k, v in train_metrics.items() if k != "stopped"},
                "val_loss": val_metrics["loss"],
                "val_accuracy": val_metrics["accuracy"],
                **{f"val_{k}": v for k, v in val_metrics.items() if k.startswith(("broken_", "test_"))},
                "seconds": time.monotonic() - started,
            }
            self.history.append(record)
            self._save_checkpoint()
            self._emit(msg.EpochFinished(epoch, last_epoch, train_metrics, val_metrics, record["seconds"]))
            every = self.config.feedback_every
            if every and epoch % every == 0 and epoch < last_epoch:
                rounds.run(epoch)
                if self.stopping:
                    raise RunStopped()
                self._set_state(RunState.TRAINING)
        self._finish(stopped=False)

    def _train_epoch(self, epoch: int) -> Dict[str, Any]:
        """One epoch of training, BatchNorm recalibrated after it; a stop mid-epoch saves a
        partial checkpoint and raises RunStopped."""

        def on_batch(batch: int, batches: int, loss: float, accuracy: float, n_annotated: int, ce: float = float("nan")) -> None:
            self._emit(msg.BatchFinished(epoch, batch, batches, loss, accuracy, n_annotated, ce))

        try:
            train_metrics = train_one_epoch(
                self.model,
                self.train_loader,
                self.optimizer,
                device=self.device,
                guidance=self.guidance,
                lam=self.lam if self.guidance is not None else 0.0,
                counterexamples=self.config.counterexamples,
                on_batch=on_batch,
                should_stop=self._should_stop,
                step=self.step,
            )
        except TrainingDiverged as error:
            raise self._diverged(error) from error
        # Eval mode must compute what was trained: before validation, the checkpoint,
        # selection and the chooser (app.engine.batchnorm_recalibration says why). Every rank
        # recalibrates on the same seeded images, so the statistics agree across ranks.
        # A stop recalibrates from one batch, not the usual 256 images: on resnet18 those took
        # 26 s, and Ctrl+C should stop between batches (the partial checkpoint goes beside).
        sample = RECALIBRATION_BATCH if train_metrics["stopped"] else RECALIBRATION_IMAGES
        recalibrate_batchnorm(self.model, self.data.train, device=self.device, seed=self.config.seed + epoch, max_images=sample)
        if train_metrics["stopped"]:  # on every rank at the same batch
            sync_buffers(self.model, self.distributed)
            self._save_checkpoint(partial=True)
            raise RunStopped()
        return train_metrics

    def _validate(self, epoch: int) -> Dict[str, Any]:
        """Validation metrics plus the extra sets'; a model gone non-finite fails the run."""
        sync_buffers(self.model, self.distributed)  # every rank validates the same model
        val_metrics = evaluate(self.model, self.val_loader, device=self.device, classes=self.data.train.classes)
        problem = weights_problem(self.model)
        if problem is not None or (val_metrics["n_images"] and not math.isfinite(val_metrics["loss"])):
            detail = problem or f"validation loss {val_metrics['loss']}"
            raise self._diverged(TrainingDiverged(f"epoch {epoch} diverged ({detail}); lower the learning rate or lambda"))
        return {**val_metrics, **self.validation.metrics(self.model)}

    def _diverged(self, error: Exception) -> TrainingDiverged:
        """The divergence message plus where the last good weights are (nothing bad is saved)."""
        where = self.paths.checkpoint_out
        if where and self.history and os.path.isfile(where):
            kept = f"; the last good checkpoint (epoch {self.history[-1]['epoch']}) is kept in {where}"
        else:
            kept = "; no checkpoint was written"
        return TrainingDiverged(f"{error}{kept}")

    def _finish(self, stopped: bool) -> None:
        self._set_state(RunState.STOPPED if stopped else RunState.FINISHED)
        self._emit(msg.TrainingFinished(self.epoch, stopped, tuple(self.history)))

    def _save_checkpoint(self, partial: bool = False) -> None:
        if not self.paths.checkpoint_out or self.model is None or not self.distributed.is_main:
            return
        last = self.history[-1] if self.history else {}
        try:
            path = self._write_checkpoint(last, partial)
        except OSError as error:  # disk full, folder gone read-only: the user's to fix
            raise UserError(f"cannot write the checkpoint {self.paths.checkpoint_out}: {error.strerror or error}") from error
        self._emit(msg.CheckpointSaved(str(path), self.epoch))

    def _write_checkpoint(self, last: Dict[str, Any], partial: bool) -> Any:
        out = self.paths.checkpoint_out
        return save_checkpoint(
            partial_checkpoint_path(out) if partial else out,  # never over a complete epoch's
            self.model,
            model_name=self.config.model,
            classes=self.data.train.classes,
            input_size=self.input_size,
            mean=self.mean,
            std=self.std,
            epoch=self.epoch,
            train_config=dataclasses.asdict(self.config),
            finetune_config=dataclasses.asdict(self.finetune_config),
            metrics={**last, "partial_epoch": partial},
            history=self.history,
            optimizer=self.optimizer,
        )
