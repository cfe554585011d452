"""The trainer: runs a whole training run in a background thread and talks only in messages.

It never touches a widget. Events go out through the `emit` callback (the app passes
`queue.put`); commands come in through `submit` and the thread-safe `pause`/`resume`/`stop`.
Everything that can fail is reported as a `TrainingFailed` event, never as an exception that
silently kills the thread.

This module holds the thread control, the run's setup and the epoch loop. Every
`feedback_every` epochs the loop hands over to `app.run.feedback_round` (select, paint, fine-tune,
commit or reject), which answers the brush window's commands with `app.run.paint_commands` and
builds what the windows show with `app.run.display_items`; `app.run.extra_validation` measures
the shortcut-broken and test sets after each epoch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from app.engine.accuracy_change import AccuracyChange
from app.engine.amp import AmpPolicy
from app.engine.batchnorm_recalibration import RECALIBRATION_BATCH, RECALIBRATION_IMAGES, recalibrate_batchnorm
from app.engine.checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint, partial_checkpoint_path, save_checkpoint
from app.engine.config import ROUND_GUIDANCE_WHEN_UNGUIDED, FinetuneConfig, RunPaths, TrainConfig
from app.engine.distributed import SINGLE_PROCESS, DistributedContext, sync_buffers
from app.engine.finite_guard import weights_problem
from app.engine.guided_step import TrainingStep
from app.engine.loops import TrainingDiverged, evaluate, train_one_epoch
from app.engine.oversampling import AnnotatedOversampler
from app.engine.rank_sampler import RankShareSampler
from app.errors import UserError, out_of_memory_message, user_error_types
from app.explain.mask_audit import warn_about_masks
from app.run import messages as msg
from app.run.command_inbox import CommandInbox, RunStopped
from app.run.extra_validation import ExtraValidation
from app.run.feedback_round import FeedbackRound
from app.run.run_lock import acquire_folder_lock, acquire_session_lock
from app.run.run_state import RunState
from datasets import ImageFolderData, load_splits
from loss import DEFAULT_LAMBDAS, build_guidance
from models import build_model, device_label, model_spec, scale_head

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Trainer:
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
        self._emit = emit
        self._stop = threading.Event()
        self._inbox = CommandInbox(self._stop)
        # Acted on between images or steps while the thread is busy, so they cannot wait in the
        # inbox: Cancel of a propagation, the end of a fine-tune round (`submit` sets them).
        self.cancel_propagation = threading.Event()
        self.stop_round = threading.Event()
        self._running = threading.Event()
        self._running.set()  # set = not paused
        self._thread: Optional[threading.Thread] = None
        self._round = FeedbackRound(self)
        self.state = RunState.IDLE  # until the thread starts (never emitted)
        # Filled in by run(); read by tests and the CLI after the thread ends.
        self.model: Optional[torch.nn.Module] = None
        self.data = None
        self.test_data = None  # the shortcut-free test folder (RunPaths.test_dir), if any
        self.history: List[Dict[str, Any]] = []
        self.epoch = 0
        self.rounds = 0
        # When masks start guiding a trained model: the shortcut-broken validation of the model
        # it started from (per image), so a run that made it worse can say so (`guidance_change`).
        self.start_broken: Optional[Dict[str, Any]] = None

    # ------------------------------------------------------------ control (any thread)
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="trainer", daemon=True)
        self._thread.start()
        return self._thread

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused loop so it can see the stop

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def submit(self, command: Any) -> None:
        """Hand a command (StartFinetune, SkipFeedback, Commit, Reject, PreviewPropagation,
        ApplyPropagation, MarkNotThis, DescribeImages, PrepareImages, PreviewPage) to the training
        thread. CancelPropagation and StopRound act on the work under way, so they set an event
        that work polls instead of waiting in the queue behind it."""
        if isinstance(command, msg.CancelPropagation):
            self.cancel_propagation.set()
            return
        if isinstance(command, msg.StopRound):
            self.stop_round.set()
            return
        self._inbox.put(command)

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

    def _set_state(self, state: RunState) -> None:
        self.state = state
        self._emit(msg.StateChanged(state))

    def _should_stop(self) -> bool:
        """Polled between batches: blocks while paused; True when stop() was called."""
        if not self._running.is_set():
            self._set_state(RunState.PAUSED)
            while not self._running.wait(timeout=0.1):
                pass
            if not self._stop.is_set():
                self._set_state(RunState.TRAINING)
        return self._stop.is_set()

    # ------------------------------------------------------------------ setup
    def _setup(self) -> Tuple[int, int]:
        """Load data and model; returns (first_epoch, last_epoch)."""
        config = self.config
        seed_everything(config.seed)
        self.device = self.distributed.device(config.device)
        amp = AmpPolicy.for_device(config.amp, self.device)
        self._check_distributed()
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

    def _check_distributed(self) -> None:
        """Refuse what a torchrun run cannot do: painting rounds, a batch it cannot share out."""
        if not self.distributed.enabled:
            return
        world = self.distributed.world_size
        if self.config.feedback_every:
            raise UserError("painting rounds need the desktop app, which runs one process; train without torchrun")
        if self.config.batch_size % world:
            raise UserError(
                f"the batch size ({self.config.batch_size}) is the global batch and must be a multiple of "
                f"the number of processes ({world})"
            )

    def _load_data(self, checkpoint: Optional[Checkpoint]) -> None:
        """The splits, at the checkpoint's input size and normalisation when starting from one."""
        config, paths = self.config, self.paths
        if checkpoint is not None:
            checkpoint.check_compatible(model_name=config.model)
            input_size, mean, std = checkpoint.input_size, checkpoint.mean, checkpoint.std
        else:
            spec = model_spec(config.model)
            input_size, mean, std = config.input_size or spec.input_size, spec.mean, spec.std
        self.input_size, self.mean, self.std = input_size, tuple(mean), tuple(std)
        self.data = load_splits(
            paths.train_dir,
            paths.val_dir,
            input_size=input_size,
            mean=mean,
            std=std,
            masks_dir=paths.masks_dir,
            val_fraction=config.val_fraction,
            seed=config.seed,
        )
        self.test_data = None
        if paths.test_dir:  # before the cache and the model: a wrong test folder is said at once
            self.test_data = ImageFolderData(
                paths.test_dir, input_size, mean, std, classes=self.data.train.classes, what="test folder"
            )
        self._cache_decoded_images()
        if paths.masks_dir and self.session is None:  # a session starts unpainted on purpose
            warn_about_masks(self.data.train)

    def _cache_decoded_images(self) -> None:
        """Training images first, then validation, while they fit in `cache_images_gb`."""
        budget = int(self.config.cache_images_gb * 2**30)
        for part in (self.data.train, self.data.val):
            if budget <= 0:
                return
            if part.cache_decoded(budget, shared=self.config.num_workers > 0):
                budget -= part.decoded_cache.pixels.numel()
            else:
                logger.warning(
                    "decoded-image cache off for %s: %d images at %d px need more than the %.1f GB left",
                    part.root,
                    len(part),
                    part.input_size,
                    budget / 2**30,
                )

    def _build_model(self, checkpoint: Optional[Checkpoint], amp: AmpPolicy) -> None:
        """The model (the checkpoint's, or a new one), its optimizer, guidance and training step."""
        config = self.config
        classes = list(self.data.train.classes)
        if checkpoint is not None:
            checkpoint.check_compatible(classes=classes)
            self.model = model_from_checkpoint(checkpoint)
        else:
            self.model = build_model(config.model, len(classes), weights_path=config.weights_path)
        self.model.to(self.device)
        self.guidance_starts = self._masks_start_guiding(checkpoint)
        if self.guidance_starts:
            # The same cooling a fine-tune round gives its candidate (app.engine.finetune): a model
            # that learnt the shortcut would be flattened by the penalty's first steps.
            scale_head(self.model, config.head_scale)
            logger.info("masks start guiding a trained model: its classifier head is scaled by %g", config.head_scale)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        if checkpoint is not None and self.paths.resume and checkpoint.optimizer_state:
            try:
                self.optimizer.load_state_dict(checkpoint.optimizer_state)
            except (ValueError, KeyError) as error:
                logger.warning("optimizer state not restored (%s); starting it fresh", error)

        self.guidance_name = config.guidance
        self.guidance = build_guidance(config.guidance, self.model) if config.guidance else None
        finetune_guidance = config.guidance or ROUND_GUIDANCE_WHEN_UNGUIDED
        self.lam = config.lam if config.lam is not None else DEFAULT_LAMBDAS[finetune_guidance]
        self.finetune_guidance = finetune_guidance
        self.step = TrainingStep(
            self.model,
            self.guidance,
            self.lam if self.guidance is not None else 0.0,
            device=self.device,
            context=self.distributed,
            amp=amp,
            penalty_gradient=config.penalty_gradient,
        )

    def _masks_start_guiding(self, checkpoint: Optional[Checkpoint]) -> bool:
        """True when this run starts masks guiding a trained model: a new run from a checkpoint
        (`train --init`, not a resumed session) with annotated images that a guidance loss or
        counterexamples will use."""
        uses_masks = self.config.guidance is not None or self.config.counterexamples
        return (
            checkpoint is not None
            and not self.paths.resume
            and uses_masks
            and self.config.head_scale != 1.0
            and bool(self.data.train.annotated_indices())
        )

    def _build_loaders(self) -> None:
        """The training loader (annotated images oversampled; this rank's share under torchrun),
        the validation loader and, with a test folder, the test loader."""
        config = self.config
        pin_memory = self.device.type == "cuda"
        # Every rank seeds the same generator: the same oversampled order, each its own share.
        generator = torch.Generator().manual_seed(config.seed)
        sampler: Any = AnnotatedOversampler(self.data.train, config.oversample_annotated, generator)
        world = self.distributed.world_size
        batch_size = config.batch_size // world  # this process's rows of the global batch
        if self.distributed.enabled:
            sampler = RankShareSampler(sampler, self.distributed.rank, world)
        n_drawn = len(sampler)
        self.train_loader = DataLoader(
            self.data.train,
            batch_size=batch_size,
            sampler=sampler,
            generator=generator,  # as with shuffle=True: the loader's base seed comes from it too
            num_workers=config.num_workers,
            drop_last=n_drawn % batch_size == 1 and n_drawn > 1,
            pin_memory=pin_memory,
            persistent_workers=config.num_workers > 0,
        )
        self.val_loader = DataLoader(
            self.data.val,
            batch_size=max(config.batch_size, 128),
            shuffle=False,
            num_workers=config.num_workers,
            pin_memory=pin_memory,
            persistent_workers=config.num_workers > 0,
        )
        self.test_loader = None
        if self.test_data is not None:
            self.test_loader = DataLoader(
                self.test_data, batch_size=max(config.batch_size, 128), shuffle=False, num_workers=config.num_workers
            )

    def _epoch_range(self, checkpoint: Optional[Checkpoint]) -> Tuple[int, int]:
        """(first_epoch, last_epoch) of this run; a resumed run continues the checkpoint's history."""
        start_epoch = checkpoint.epoch if checkpoint is not None else 0
        self.history = list(checkpoint.history) if (checkpoint is not None and self.paths.resume) else []
        self.epoch = start_epoch
        if self.session is not None:
            self.rounds = len(self.session.history())
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

    # ------------------------------------------------------------------ main loop
    def _run(self) -> None:
        self._set_state(RunState.LOADING)
        first_epoch, last_epoch = self._setup()
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
                self._round.run(epoch)
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
