"""The trainer: runs a whole training run in a background thread and talks only in messages.

It never touches a widget. Events go out through the `emit` callback (the app passes
`queue.put`); commands come in through `submit` and the thread-safe `pause`/`resume`/`stop`.
Everything that can fail is reported as a `TrainingFailed` event, never as an exception that
silently kills the thread.

While it waits for paint (after `FeedbackNeeded`) it also answers `PreviewPropagation` and
`ApplyPropagation` (with `PropagationPreview` / `PropagationApplied`, or `PropagationFailed`,
which leaves the round waiting): the UI never runs the model, this thread does, and the model is
not being trained while it waits. Before each round it emits `ReasonabilityReady`, GRADIA's
matrix of the current model on a bounded pool of training images.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import random
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np
import torch
from torch.utils.data import DataLoader

from app.engine.amp import AmpPolicy
from app.engine.batchnorm_recalibration import recalibrate_batchnorm
from app.engine.checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from app.engine.config import ROUND_GUIDANCE_WHEN_UNGUIDED, FinetuneConfig, RunPaths, TrainConfig
from app.engine.distributed import SINGLE_PROCESS, DistributedContext, sync_buffers
from app.engine.finetune import FinetuneResult, commit_candidate, finetune_round
from app.engine.finite_guard import weights_problem
from app.engine.guided_step import TrainingStep
from app.engine.loops import TrainingDiverged, evaluate, train_one_epoch
from app.engine.oversampling import AnnotatedOversampler
from app.engine.rank_sampler import RankShareSampler
from app.errors import UserError, user_error_types
from app.explain.content_locator import resize_bool
from app.explain.mask_audit import warn_about_masks
from app.explain.propagation import PropagationPlan, apply_propagation, hand_painted, painted_red_sources, plan_propagation
from app.explain.reasonability import reasonability_matrix
from app.explain.saliency import saliency_maps
from app.explain.selection import select_images
from app.explain.shortcut_broken import BrokenValidation
from app.run import messages as msg
from app.run.run_lock import acquire_folder_lock, acquire_session_lock
from app.run.run_state import RunState
from datasets import ImageFolderData, MaskStore, load_splits, stack_samples
from datasets.display import DISPLAY_MAX_SIDE
from loss import DEFAULT_LAMBDAS, build_guidance
from models import build_model, device_label, model_spec

logger = logging.getLogger(__name__)

COMPARISONS_MAX = 12  # annotated images shown in the chooser
# The reasonability matrix costs one forward and backward per pooled image before every round,
# which delays the brush window: 128 images of small_cnn take about 1 s on a busy 2-core CPU;
# models at 224 px (resnet18) judge 16 images on a CPU (a few seconds there), 128 on a GPU.
REASONABILITY_POOL = 128
REASONABILITY_POOL_LARGE_CPU = 16
LARGE_INPUT = 128  # input side from which a model counts as large for the pool above
REASONABILITY_MEMBERS = 200  # relpaths sent per cell of the matrix
PREVIEW_SIDE = 160  # long side of a content-propagation preview thumbnail
PREVIEW_ITEMS = 48  # thumbnails per preview: the best half and the most borderline half
GALLERY_MAX = 5000  # training images the gallery lists with predictions
GALLERY_CHUNK = 128  # images per forward when predicting for the gallery
GALLERY_PAINT_MAX = 48  # images added to the brush window at once


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class _Stopped(Exception):
    """Raised inside the thread when stop() was requested while waiting."""


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
        self._commands: "queue.Queue[Any]" = queue.Queue()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()  # set = not paused
        self._thread: Optional[threading.Thread] = None
        self.state = RunState.IDLE  # until the thread starts (never emitted)
        # Filled in by run(); read by tests and the CLI after the thread ends.
        self.model: Optional[torch.nn.Module] = None
        self.data = None
        self.history: List[Dict[str, Any]] = []
        self.epoch = 0
        self.rounds = 0

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
        ApplyPropagation) to the training thread."""
        if not isinstance(command, msg.COMMAND_TYPES):
            raise TypeError(f"not a trainer command: {command!r}")
        self._commands.put(command)

    # ------------------------------------------------------------------ thread body
    def run(self) -> None:
        """The whole run; blocking. Every outcome ends in TrainingFinished or TrainingFailed."""
        lock = None
        try:
            lock = self._lock_folder()
            self._run()
        except _Stopped:
            self._finish(stopped=True)
        except Exception as error:  # noqa: BLE001 -- the thread must report, not die silently
            if isinstance(error, user_error_types()):
                logger.info("training stopped: %s", error)  # the consumer shows it
                self._set_state(RunState.FAILED)
                self._emit(msg.TrainingFailed(str(error), user_error=True))
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

    def _wait_command(self, accepted: Tuple[Type, ...]) -> Any:
        while True:
            if self._stop.is_set():
                raise _Stopped()
            try:
                command = self._commands.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(command, accepted):
                return command
            logger.warning("ignoring %s while waiting for %s", type(command).__name__, [t.__name__ for t in accepted])

    # ------------------------------------------------------------------ setup
    def _setup(self) -> Tuple[int, int]:
        """Load data and model; returns (first_epoch, last_epoch)."""
        config, paths = self.config, self.paths
        seed_everything(config.seed)
        self.device = self.distributed.device(config.device)
        amp = AmpPolicy.for_device(config.amp, self.device)
        world = self.distributed.world_size
        if self.distributed.enabled:
            if config.feedback_every:
                raise UserError("painting rounds need the desktop app, which runs one process; train without torchrun")
            if config.batch_size % world:
                raise UserError(
                    f"the batch size ({config.batch_size}) is the global batch and must be a multiple of "
                    f"the number of processes ({world})"
                )
        checkpoint: Optional[Checkpoint] = None
        if paths.init_checkpoint:
            checkpoint = load_checkpoint(paths.init_checkpoint)
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
        self._cache_decoded_images()
        classes = list(self.data.train.classes)
        if paths.masks_dir and self.session is None:  # a session starts unpainted on purpose
            warn_about_masks(self.data.train)
        if checkpoint is not None:
            checkpoint.check_compatible(classes=classes)
            self.model = model_from_checkpoint(checkpoint)
        else:
            self.model = build_model(config.model, len(classes), weights_path=config.weights_path)
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        if checkpoint is not None and paths.resume and checkpoint.optimizer_state:
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
        )

        # Every rank seeds the same generator: the same oversampled order, each its own share.
        generator = torch.Generator().manual_seed(config.seed)
        n_train = len(self.data.train)
        sampler: Any = AnnotatedOversampler(self.data.train, config.oversample_annotated, generator)
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
            pin_memory=self.device.type == "cuda",
            persistent_workers=config.num_workers > 0,
        )
        self.val_loader = DataLoader(
            self.data.val,
            batch_size=max(config.batch_size, 128),
            shuffle=False,
            num_workers=config.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=config.num_workers > 0,
        )
        self.test_loader = None
        if paths.test_dir:
            test = ImageFolderData(paths.test_dir, self.input_size, self.mean, self.std, classes=list(classes))
            self.test_loader = DataLoader(
                test, batch_size=max(config.batch_size, 128), shuffle=False, num_workers=config.num_workers
            )
        self._broken: Optional[BrokenValidation] = None
        self._broken_stale = True

        start_epoch = checkpoint.epoch if checkpoint is not None else 0
        self.history = list(checkpoint.history) if (checkpoint is not None and paths.resume) else []
        self.epoch = start_epoch
        if self.session is not None:
            self.rounds = len(self.session.history())
        last_epoch = config.epochs if paths.resume else start_epoch + config.epochs
        if last_epoch <= start_epoch:
            raise UserError(
                f"this session has already trained all {start_epoch} of its epochs; set "
                f"Epochs above {start_epoch} (the total) to train more"
            )
        skipped = tuple(getattr(self.data.train, "skipped", ())) + tuple(getattr(self.data.val, "skipped", ()))
        self._emit(
            msg.RunStarted(
                device=device_label(self.device),
                classes=tuple(classes),
                n_train=n_train,
                n_val=len(self.data.val),
                first_epoch=start_epoch + 1,
                epochs=last_epoch,
                batches_per_epoch=len(self.train_loader),
                skipped=tuple((str(a), str(b)) for a, b in skipped),
                class_counts=tuple(
                    int(c) for c in np.bincount(np.asarray(self.data.train.targets, dtype=np.int64), minlength=len(classes))
                ),
            )
        )
        return start_epoch + 1, last_epoch

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

    # ------------------------------------------------------------------ main loop
    def _run(self) -> None:
        self._set_state(RunState.LOADING)
        first_epoch, last_epoch = self._setup()
        self._set_state(RunState.TRAINING)
        for epoch in range(first_epoch, last_epoch + 1):
            started = time.monotonic()

            def on_batch(
                batch: int,
                batches: int,
                loss: float,
                accuracy: float,
                n_annotated: int,
                ce: float = float("nan"),
                epoch: int = epoch,
            ) -> None:
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
            recalibrate_batchnorm(self.model, self.data.train, device=self.device, seed=self.config.seed + epoch)
            if train_metrics["stopped"]:  # on every rank at the same batch
                sync_buffers(self.model, self.distributed)
                self._save_checkpoint(partial=True)
                raise _Stopped()
            sync_buffers(self.model, self.distributed)  # every rank validates the same model
            val_metrics = evaluate(self.model, self.val_loader, device=self.device, classes=self.data.train.classes)
            problem = weights_problem(self.model)
            if problem is not None or (val_metrics["n_images"] and not math.isfinite(val_metrics["loss"])):
                detail = problem or f"validation loss {val_metrics['loss']}"
                raise self._diverged(TrainingDiverged(f"epoch {epoch} diverged ({detail}); lower the learning rate or lambda"))
            val_metrics = {**val_metrics, **self._extra_validation()}
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
                self._feedback_round(epoch)
                if self.stopping:
                    raise _Stopped()
                self._set_state(RunState.TRAINING)
        self._finish(stopped=False)

    # ------------------------------------------------------------------ validation beyond the split
    def _broken_validation(self) -> Optional[BrokenValidation]:
        """The shortcut-broken validation for the current hand-painted masks (built when they
        changed; None when nothing is painted red). A failure is logged, never fatal."""
        if self._broken_stale:
            self._broken_stale = False
            try:
                self._broken = BrokenValidation.build(
                    self.data.train, self.data.val, device=self.device, negative_store=self._negative_store()
                )
            except Exception:  # noqa: BLE001 -- a missing extra metric must not end the run
                logger.exception("shortcut-broken validation not built")
                self._broken = None
        return self._broken

    def _negative_store(self) -> Optional[MaskStore]:
        """The "not this" corrections of content propagation (RunPaths.negatives_dir), if any."""
        if not self.paths.negatives_dir:
            return None
        return MaskStore(self.paths.negatives_dir, self.data.train.relpaths)

    def _extra_validation(self) -> Dict[str, float]:
        """broken_accuracy/broken_loss/broken_found (shortcut-broken validation) and
        test_accuracy/test_loss (the optional shortcut-free test folder), where available."""
        extra: Dict[str, float] = {}
        broken = self._broken_validation()
        if broken is not None:
            metrics = broken.evaluate(self.model, self.device)
            extra.update({f"broken_{k}": v for k, v in metrics.items()})
        if self.test_loader is not None:
            metrics = evaluate(self.model, self.test_loader, device=self.device)
            extra.update({"test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"]})
        return extra

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
        return save_checkpoint(
            self.paths.checkpoint_out,
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

    # ------------------------------------------------------------------ feedback
    def _predict(self, model: torch.nn.Module, images: torch.Tensor) -> Tuple[List[int], List[float]]:
        model.eval()
        with torch.inference_mode():
            probabilities = torch.softmax(model(images), dim=1)
        confidence, predicted = probabilities.max(1)
        return predicted.tolist(), confidence.tolist()

    def _saliency(self, model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
        return saliency_maps(model, images, targets, self.config.saliency_method).numpy()

    def _feedback_items(self, epoch: int) -> List[msg.FeedbackItem]:
        train = self.data.train
        # Only hand-painted images are left out: an image with a propagated mask still deserves
        # a look (propagating to "all" would otherwise leave no image for the next round).
        annotated = hand_painted(train.masks) if train.masks is not None else []
        choices = select_images(
            self.model,
            train,
            self.config.images_per_round,
            self.config.selection,
            device=self.device,
            seed=self.config.seed + epoch,
            exclude=annotated,
        )
        if not choices:
            return []
        images, targets, _, _ = stack_samples(train, [c.index for c in choices], self.device)
        predicted, confidence = self._predict(self.model, images)
        saliency = self._saliency(self.model, images, targets)
        classes = train.classes
        items = []
        for row, choice in enumerate(choices):
            existing = train.masks.load_array(choice.relpath) if train.masks is not None else None
            items.append(
                msg.FeedbackItem(
                    relpath=choice.relpath,
                    image=train.display_image(choice.index, max_side=DISPLAY_MAX_SIDE),
                    saliency=saliency[row],
                    true_label=classes[int(targets[row])],
                    predicted_label=classes[predicted[row]],
                    confidence=float(confidence[row]),
                    mask=existing,
                    reason=choice.reason,
                )
            )
        return items

    def _comparisons(self, result: FinetuneResult, relpaths: Sequence[str]) -> Tuple[msg.Comparison, ...]:
        train = self.data.train
        wanted = [r for r in relpaths if train.masks is not None and train.masks.has(r)]
        if not wanted:
            wanted = [train.relpaths[i] for i in result.annotated_indices]
        indices = [train.index_of(r) for r in wanted[:COMPARISONS_MAX]]
        if not indices:
            return ()
        images, targets, _, _ = stack_samples(train, indices, self.device)
        old_pred, old_conf = self._predict(self.model, images)
        new_pred, new_conf = self._predict(result.candidate, images)
        old_saliency = self._saliency(self.model, images, targets)
        new_saliency = self._saliency(result.candidate, images, targets)
        classes = train.classes
        comparisons = []
        for row, index in enumerate(indices):
            image = train.display_image(index, max_side=DISPLAY_MAX_SIDE)
            mask = train.masks.load_array(train.relpaths[index])
            comparisons.append(
                msg.Comparison(
                    relpath=train.relpaths[index],
                    image=image,
                    mask=mask,
                    saliency_old=old_saliency[row],
                    saliency_new=new_saliency[row],
                    true_label=classes[int(targets[row])],
                    predicted_old=classes[old_pred[row]],
                    predicted_new=classes[new_pred[row]],
                    confidence_old=float(old_conf[row]),
                    confidence_new=float(new_conf[row]),
                )
            )
        return tuple(comparisons)

    def _record_round(self, epoch: int, relpaths: Sequence[str], decision: str, report: Optional[Dict[str, Any]]) -> None:
        if self.session is None:
            return
        self.session.append_history(
            {
                "round": self.rounds,
                "epoch": epoch,
                "images": list(relpaths),
                "decision": decision,
                "n_annotated_total": len(self.data.train.masks.annotated()) if self.data.train.masks else 0,
                "report": report,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )

    def _reasonability_pool(self) -> int:
        if self.device.type == "cpu" and self.input_size >= LARGE_INPUT:
            return REASONABILITY_POOL_LARGE_CPU
        return REASONABILITY_POOL

    def _emit_reasonability(self, round_number: int, epoch: int) -> None:
        """Emit ReasonabilityReady for the current model; a failure only logs (the round goes on)."""
        train = self.data.train
        self._set_state(RunState.JUDGING)
        try:
            matrix = reasonability_matrix(
                self.model,
                train,
                device=self.device,
                pool_size=self._reasonability_pool(),
                seed=self.config.seed + epoch,
                should_stop=self._stop.is_set,
            )
        except Exception:  # noqa: BLE001 -- a view for the user; never worth losing the round
            logger.exception("reasonability matrix not computed")
            return
        if matrix is None:  # stopped meanwhile
            return
        members = {cell: tuple(relpaths[:REASONABILITY_MEMBERS]) for cell, relpaths in matrix.members.items()}
        matrix = dataclasses.replace(matrix, counts=dict(matrix.counts), members=members)
        self._emit(msg.ReasonabilityReady(round_number, epoch, matrix, len(train)))

    def _propagation_command(self, command: Any) -> None:
        """Answer PreviewPropagation / ApplyPropagation; errors become PropagationFailed."""
        train = self.data.train
        sources, scope = tuple(command.sources), command.scope
        if scope == "content" and train.masks is not None:
            # The content is learnt from every image painted red by hand, not only this one.
            sources = tuple(dict.fromkeys(sources + tuple(painted_red_sources(train))))
        self._set_state(RunState.PROPAGATING)
        try:
            plan = plan_propagation(
                train,
                sources,
                scope,
                model=self.model,
                device=self.device,
                negative_store=self._negative_store(),
                excluded=tuple(command.excluded),
            )
            if isinstance(command, msg.PreviewPropagation):
                self._emit(
                    msg.PropagationPreview(
                        sources,
                        scope,
                        plan.count,
                        tuple(plan.ranked()),
                        tuple(plan.skipped_hand_painted),
                        self._preview_items(plan),
                        plan.candidates,
                        plan.threshold,
                    )
                )
                return
            result = apply_propagation(train, plan)
            self._broken_stale = True
            self._emit(
                msg.PropagationApplied(
                    sources, scope, result.written, len(plan.skipped_hand_painted), tuple(plan.relpaths), result.removed
                )
            )
        except Exception as error:  # noqa: BLE001 -- the round must go on whatever happened
            if isinstance(error, user_error_types()):
                logger.warning("propagation refused: %s", error)
                self._emit(msg.PropagationFailed(sources, scope, str(error)))
            else:
                logger.exception("propagation failed")
                self._emit(
                    msg.PropagationFailed(
                        sources, scope, f"{type(error).__name__}: {error}", traceback.format_exc(), user_error=False
                    )
                )

    def _preview_items(self, plan: PropagationPlan) -> Tuple[msg.PreviewItem, ...]:
        """Thumbnails of a content plan's best and most borderline finds (PREVIEW_ITEMS in all)."""
        if plan.scope != "content" or not plan.targets:
            return ()
        ranked = plan.ranked()
        half = PREVIEW_ITEMS // 2
        chosen = ranked if len(ranked) <= PREVIEW_ITEMS else ranked[:half] + ranked[-half:]
        train = self.data.train
        items = []
        for relpath in chosen:
            thumbnail = train.display_image(train.index_of(relpath), max_side=PREVIEW_SIDE)
            region = plan.found_mask(relpath, thumbnail.shape[:2])
            items.append(msg.PreviewItem(relpath, thumbnail, region, plan.confidence.get(relpath, 0.0)))
        return tuple(items)

    def _mark_not_this(self, command: msg.MarkNotThis) -> None:
        """Save a "not this" correction (red = wrongly found) in the negatives folder."""
        store = self._negative_store()
        if store is None:
            self._emit(msg.PropagationFailed((command.relpath,), "content", "this run has no folder for 'not this' corrections"))
            return
        train = self.data.train
        try:
            height, width = train.display_image(train.index_of(command.relpath), max_side=DISPLAY_MAX_SIDE).shape[:2]
            plan_region = resize_bool(np.asarray(command.region, dtype=bool), (height, width))
            earlier = store.load_array(command.relpath)
            mask = np.where(plan_region, np.int8(1), np.int8(0)).astype(np.int8)
            if earlier is not None and earlier.shape == mask.shape:
                mask = np.maximum(mask, (earlier > 0).astype(np.int8))
            store.save(command.relpath, mask, meta={"source": "not-this"})
        except Exception as error:  # noqa: BLE001 -- the round goes on
            logger.exception("'not this' correction not saved")
            self._emit(msg.PropagationFailed((command.relpath,), "content", f"correction not saved: {error}"))

    def _gallery_command(self, command: Any) -> None:
        """Answer DescribeImages / PrepareImages while the round waits for paint; a failure
        only logs (the round goes on)."""
        try:
            if isinstance(command, msg.DescribeImages):
                self._emit(self._describe_images())
            else:
                self._emit(self._prepare_images(command.relpaths))
        except Exception:  # noqa: BLE001 -- a view for the user; never worth losing the round
            logger.exception("gallery request failed")

    def _describe_images(self) -> msg.ImagesDescribed:
        train = self.data.train
        count = min(len(train), GALLERY_MAX)
        classes = train.classes
        entries = []
        for start in range(0, count, GALLERY_CHUNK):
            indices = list(range(start, min(count, start + GALLERY_CHUNK)))
            images, targets, _, _ = stack_samples(train, indices, self.device)
            predicted, confidence = self._predict(self.model, images)
            for row, index in enumerate(indices):
                entries.append(
                    msg.GalleryEntry(
                        train.relpaths[index], classes[int(targets[row])], classes[predicted[row]], float(confidence[row])
                    )
                )
        return msg.ImagesDescribed(tuple(entries), len(train))

    def _prepare_images(self, relpaths: Sequence[str]) -> msg.ImagesPrepared:
        train = self.data.train
        known = set(train.relpaths)
        wanted = [r for r in relpaths if r in known][:GALLERY_PAINT_MAX]
        missing = tuple(r for r in relpaths if r not in known)
        if not wanted:
            return msg.ImagesPrepared((), missing)
        indices = [train.index_of(r) for r in wanted]
        images, targets, _, _ = stack_samples(train, indices, self.device)
        predicted, confidence = self._predict(self.model, images)
        saliency = self._saliency(self.model, images, targets)
        classes = train.classes
        items = tuple(
            msg.FeedbackItem(
                relpath=relpath,
                image=train.display_image(index, max_side=DISPLAY_MAX_SIDE),
                saliency=saliency[row],
                true_label=classes[int(targets[row])],
                predicted_label=classes[predicted[row]],
                confidence=float(confidence[row]),
                mask=train.masks.load_array(relpath) if train.masks is not None else None,
                reason="chosen by you",
            )
            for row, (relpath, index) in enumerate(zip(wanted, indices))
        )
        return msg.ImagesPrepared(items, missing)

    def _feedback_round(self, epoch: int) -> None:
        """Select, wait for paint, fine-tune, wait for the decision, apply it."""
        self.rounds += 1
        round_number = self.rounds
        if self.data.train.masks is None:
            logger.warning("feedback round skipped: this run has no mask folder")
            return
        self._set_state(RunState.SELECTING)
        items = self._feedback_items(epoch)
        if not items:
            logger.info("feedback round %d skipped: no unannotated images left", round_number)
            return
        self._emit_reasonability(round_number, epoch)
        self._set_state(RunState.WAITING_FOR_FEEDBACK)
        self._emit(msg.FeedbackNeeded(round_number, epoch, tuple(items), self.config.selection))
        while True:
            command = self._wait_command(
                (
                    msg.StartFinetune,
                    msg.SkipFeedback,
                    msg.PreviewPropagation,
                    msg.ApplyPropagation,
                    msg.MarkNotThis,
                    msg.DescribeImages,
                    msg.PrepareImages,
                )
            )
            if isinstance(command, msg.MarkNotThis):
                self._mark_not_this(command)
                continue
            if isinstance(command, (msg.DescribeImages, msg.PrepareImages)):
                self._gallery_command(command)
                continue
            if not isinstance(command, (msg.PreviewPropagation, msg.ApplyPropagation)):
                break
            self._propagation_command(command)
            self._set_state(RunState.WAITING_FOR_FEEDBACK)
        if isinstance(command, msg.SkipFeedback):
            self._record_round(epoch, (), "cancelled", None)
            self._emit(msg.RoundDecided(round_number, epoch, committed=False, finetuned=False))
            return

        n_annotated = len(self.data.train.masks.annotated())
        if n_annotated == 0:  # Done with nothing painted: a 0-step round would compare nothing
            logger.info("round %d: nothing painted, nothing to fine-tune", round_number)
            self._record_round(epoch, (), "skipped", None)  # nothing painted
            self._emit(msg.RoundDecided(round_number, epoch, committed=False, finetuned=False))
            return
        self._set_state(RunState.FINETUNING)
        self._emit(msg.FinetuneStarted(round_number, n_annotated, self.finetune_config.max_steps))

        def on_progress(step: int, max_steps: int, guidance: float, val_loss: float) -> None:
            self._emit(msg.FinetuneProgress(round_number, step, max_steps, guidance, val_loss))

        self._broken_stale = True  # the round's paint is saved now
        result = finetune_round(
            self.model,
            train_data=self.data.train,
            val_loader=self.val_loader,
            broken=self._broken_validation(),
            guidance_name=self.finetune_guidance,
            lam=self.lam,
            # one switch for the run: the round swaps red regions when the epochs do
            config=dataclasses.replace(self.finetune_config, counterexamples=self.config.counterexamples),
            device=self.device,
            seed=self.config.seed + 1000 * round_number,
            on_progress=on_progress,
            should_stop=lambda: self._stop.is_set(),
            on_step=lambda step, max_steps: self._emit(msg.FinetuneStep(round_number, step, max_steps)),
        )
        comparisons = self._comparisons(result, command.relpaths)
        self._set_state(RunState.WAITING_FOR_DECISION)
        self._emit(msg.FinetuneDone(round_number, result.report, comparisons))
        try:
            decision = self._wait_command((msg.Commit, msg.Reject))
        except _Stopped:
            self._record_round(epoch, command.relpaths, "stopped", result.report.to_dict())
            raise
        committed = isinstance(decision, msg.Commit)
        problem = weights_problem(result.candidate) if committed else None
        if problem is not None:  # finetune_round falls back to finite weights; never commit others
            logger.error("commit refused: the candidate's weights are broken (%s)", problem)
            committed = False
        if committed:
            commit_candidate(self.model, result.candidate)
            self._save_checkpoint()
        self._record_round(epoch, command.relpaths, "commit" if committed else "reject", result.report.to_dict())
        self._emit(msg.RoundDecided(round_number, epoch, committed=committed, finetuned=True))
