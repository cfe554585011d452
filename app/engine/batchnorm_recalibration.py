"""Recompute BatchNorm running statistics so that eval mode computes what training trained.

A train-mode BatchNorm normalises with the statistics of the batch in front of it and keeps an
exponential average (momentum 0.1) for eval mode. In a short run on a small folder, and more so
in guided runs whose batches oversample the annotated images, that average lags far behind the
weights: an eval-mode model at chance with a training accuracy near 1
(docs/batchnorm_recalibration.md has the measurements). The guidance forward itself updates
nothing (`loss.batch_statistics.normalising_with`).

`recalibrate_batchnorm` is the fix: every BatchNorm's running mean and variance are reset and
recomputed as a cumulative average (momentum None) over a bounded, seeded, uniform sample of
clean training images (no counterexamples, no oversampling), under `no_grad`, with dropout
off, then momentum and modes are restored. The trainer calls it after every epoch (before
validation, the checkpoint, selection and the chooser) and the fine-tune round before every
evaluation of its candidate, so every model that is evaluated, saved or offered runs in eval
mode as it trained. It costs one forward of `max_images` images (256 by default).
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

logger = logging.getLogger(__name__)

RECALIBRATION_IMAGES = 256  # training images one recalibration forwards (bounds its cost)
RECALIBRATION_BATCH = 64  # images per forward; every batch weighs alike in the average


def batchnorm_layers(model: nn.Module) -> List[_BatchNorm]:
    """The BatchNorm modules of `model` that keep running statistics."""
    return [
        module
        for module in model.modules()
        if isinstance(module, _BatchNorm) and module.track_running_stats and module.running_mean is not None
    ]


def recalibration_indices(n_images: int, max_images: int = RECALIBRATION_IMAGES, seed: int = 0) -> List[int]:
    """A seeded uniform sample of at most `max_images` of `range(n_images)`, sorted."""
    if n_images <= max_images:
        return list(range(n_images))
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n_images, generator=generator)[:max_images].tolist())


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    dataset: Any,
    *,
    device: torch.device,
    max_images: int = RECALIBRATION_IMAGES,
    batch_size: int = RECALIBRATION_BATCH,
    seed: int = 0,
    indices: Optional[Sequence[int]] = None,
) -> int:
    """Recompute every BatchNorm's running mean/variance of `model` from clean images.

    Args:
        model: any network; returns 0 at once when it has no BatchNorm with running statistics.
        dataset: indexable, `dataset[i][0]` a 3 x H x W normalised image (an ImageFolderData).
        device: where the model lives.
        max_images: at most this many images are forwarded (a seeded uniform sample).
        batch_size: images per forward. A last batch of one image is merged into the one before
            (BatchNorm cannot compute a variance from one value per channel when H = W = 1).
        indices: use exactly these dataset indices instead of a sample.

    Returns the number of images forwarded. Modes, momentum and the parameters are unchanged;
    only the running statistics (and `num_batches_tracked`) are rewritten.
    """
    layers = batchnorm_layers(model)
    if not layers or len(dataset) == 0:
        return 0
    chosen = list(indices) if indices is not None else recalibration_indices(len(dataset), max_images, seed)
    if not chosen:
        return 0
    batches = [chosen[start : start + batch_size] for start in range(0, len(chosen), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())
    modes = [(module, module.training) for module in model.modules()]
    momenta = [(layer, layer.momentum) for layer in layers]
    saved = [(layer.running_mean.clone(), layer.running_var.clone(), layer.num_batches_tracked.clone()) for layer in layers]
    try:
        model.eval()  # dropout off
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None  # cumulative moving average: every batch counts alike
            layer.train()
        for batch in batches:
            images = torch.stack([dataset[i][0] for i in batch]).to(device)
            model(images)
    except BaseException:
        for layer, (mean, variance, tracked) in zip(layers, saved):
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(variance)
            layer.num_batches_tracked.copy_(tracked)
        raise
    finally:
        for layer, momentum in momenta:
            layer.momentum = momentum
        for module, training in modes:
            module.training = training
    return len(chosen)
