"""A run's data and model, set up one way for every path that trains: the trainer (the app's
runs and rounds, `train`, `train --init --masks`) and the `finetune` command.

`load_run_data` reads the splits at the input size and normalisation of the checkpoint the run
starts from (or of the model's spec), checks the checkpoint's classes against them and opens the
optional shortcut-free test folder before anything costly is built; `model_for_run` is the
checkpoint's model or a new one, and `build_run_model` adds what the trainer's epochs train it
with. The guidance and lambda of a round come from the config's own rule
(`TrainConfig.round_guidance`, `TrainConfig.round_lambda`).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np
import torch
from torch import nn

from app.engine.allocator import keep_freed_memory
from app.engine.amp import AmpPolicy
from app.engine.checkpoint import Checkpoint, model_from_checkpoint
from app.engine.config import TrainConfig
from app.engine.distributed import DistributedContext
from app.engine.guided_step import TrainingStep
from app.errors import UserError
from app.explain.mask_audit import warn_about_masks
from datasets import DataSplits, ImageFolderData, load_splits
from loss import build_guidance
from models import build_model, model_spec, scale_head

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass
class RunData:
    """The images a run trains and measures on, as the model sees them."""

    splits: DataSplits  # .train (with the masks) and .val
    test: Optional[ImageFolderData]  # the shortcut-free test folder, if any
    input_size: int  # square model input side in pixels
    mean: Tuple[float, float, float]  # normalisation of the model's inputs
    std: Tuple[float, float, float]


def load_run_data(
    config: TrainConfig,
    checkpoint: Optional[Checkpoint],
    *,
    train_dir: str,
    val_dir: Optional[str] = None,
    masks_dir: Optional[str] = None,
    test_dir: Optional[str] = None,
    warn_masks: bool = True,
) -> RunData:
    """The splits (`config.val_fraction`, `config.seed`), at the checkpoint's input size and
    normalisation when starting from one (which must be a `config.model` with the data's classes:
    CheckpointError), else at the model's. A wrong test folder is said here, before a model or a
    cache is built. `warn_masks`: warn about masks that fit no image or are blank
    (`app.explain.mask_audit.warn_about_masks`). The first run of a process also sets the C
    allocator to keep freed memory (`app.engine.allocator`: 5-20 % off a CPU step)."""
    keep_freed_memory()
    if checkpoint is not None:
        checkpoint.check_compatible(model_name=config.model)
        input_size, mean, std = checkpoint.input_size, checkpoint.mean, checkpoint.std
    else:
        spec = model_spec(config.model)
        input_size, mean, std = config.input_size or spec.input_size, spec.mean, spec.std
    splits = load_splits(
        train_dir,
        val_dir,
        input_size=input_size,
        mean=mean,
        std=std,
        masks_dir=masks_dir,
        val_fraction=config.val_fraction,
        seed=config.seed,
    )
    if checkpoint is not None:
        checkpoint.check_compatible(classes=splits.train.classes)
    test = None
    if test_dir:
        test = ImageFolderData(test_dir, input_size, mean, std, classes=splits.train.classes, what="test folder")
    if masks_dir and warn_masks:
        warn_about_masks(splits.train)
    return RunData(splits, test, input_size, tuple(mean), tuple(std))


def model_for_run(config: TrainConfig, checkpoint: Optional[Checkpoint], n_classes: int, device: torch.device) -> nn.Module:
    """The checkpoint's model with its weights, or a new `config.model` (with `config.weights_path`
    when given), on `device`."""
    if checkpoint is not None:
        model = model_from_checkpoint(checkpoint)
    else:
        model = build_model(config.model, n_classes, weights_path=config.weights_path)
    return model.to(device)


def cache_decoded_images(splits: DataSplits, config: TrainConfig) -> None:
    """Keep training images decoded, then validation ones, while they fit in `cache_images_gb`."""
    budget = int(config.cache_images_gb * 2**30)
    for part in (splits.train, splits.val):
        if budget <= 0:
            return
        if part.cache_decoded(budget, shared=config.num_workers > 0):
            budget -= part.decoded_cache.pixels.numel()
        else:
            logger.warning(
                "decoded-image cache off for %s: %d images at %d px need more than the %.1f GB left",
                part.root,
                len(part),
                part.input_size,
                budget / 2**30,
            )


def check_distributed(config: TrainConfig, distributed: DistributedContext) -> None:
    """Refuse what a torchrun run cannot do: painting rounds, a batch it cannot share out."""
    if not distributed.enabled:
        return
    world = distributed.world_size
    if config.feedback_every:
        raise UserError("painting rounds need the desktop app, which runs one process; train without torchrun")
    if config.batch_size % world:
        raise UserError(
            f"the batch size ({config.batch_size}) is the global batch and must be a multiple of "
            f"the number of processes ({world})"
        )


def masks_start_guiding(config: TrainConfig, checkpoint: Optional[Checkpoint], resume: bool, train: Any) -> bool:
    """True when a run starts masks guiding a trained model: a new run from a checkpoint
    (`train --init`, not a resumed session) with annotated images that a guidance loss or
    counterexamples will use; its classifier head is then cooled by `config.head_scale` first."""
    uses_masks = config.guidance is not None or config.counterexamples
    return checkpoint is not None and not resume and uses_masks and config.head_scale != 1.0 and bool(train.annotated_indices())


@dataclass
class RunModel:
    """The model a run trains and what trains it."""

    model: nn.Module  # on the run's device
    optimizer: torch.optim.Optimizer  # Adam (restored from the checkpoint when resuming)
    guidance: Optional[nn.Module]  # the epochs' guidance loss (None: unguided epochs)
    lam: float  # the rounds' lambda (TrainConfig.round_lambda), the epochs' too when guided
    step: TrainingStep  # one optimiser step of the epochs
    guidance_starts: bool  # masks start guiding a trained model (`masks_start_guiding`): head cooled


def build_run_model(
    config: TrainConfig,
    checkpoint: Optional[Checkpoint],
    train: Any,
    device: torch.device,
    *,
    resume: bool,
    amp: AmpPolicy,
    distributed: DistributedContext,
) -> RunModel:
    """The model (`model_for_run`), its head cooled when masks start guiding it, its optimiser,
    the epochs' guidance and their training step."""
    model = model_for_run(config, checkpoint, len(train.classes), device)
    guidance_starts = masks_start_guiding(config, checkpoint, resume, train)
    if guidance_starts:
        # The same cooling a fine-tune round gives its candidate (app.engine.finetune): a model
        # that learnt the shortcut would be flattened by the penalty's first steps.
        scale_head(model, config.head_scale)
        logger.info("masks start guiding a trained model: its classifier head is scaled by %g", config.head_scale)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if checkpoint is not None and resume and checkpoint.optimizer_state:
        try:
            optimizer.load_state_dict(checkpoint.optimizer_state)
        except (ValueError, KeyError) as error:
            logger.warning("optimizer state not restored (%s); starting it fresh", error)
    guidance = build_guidance(config.guidance, model) if config.guidance else None
    lam = config.round_lambda()
    step = TrainingStep(
        model,
        guidance,
        lam if guidance is not None else 0.0,
        device=device,
        context=distributed,
        amp=amp,
        penalty_gradient=config.penalty_gradient,
    )
    return RunModel(model, optimizer, guidance, lam, step, guidance_starts)
