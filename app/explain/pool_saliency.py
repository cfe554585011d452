"""Saliency, predictions and Grad-CAM decisiveness over a pool of data set images, in batches.

What the reasonability matrix and the "unreasonable first" selection compute per image before
scoring; both may be cancelled between batches (`should_stop`).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import torch
from torch import nn

from app.explain.explanation_metrics import gradient_saliency
from app.explain.faithfulness import hiding_effect
from app.explain.saliency import saliency_maps
from models import gradcam_layer

CHUNK = 64  # images per saliency batch


def pool_saliency(
    model: nn.Module, dataset: Any, indices: Sequence[int], device: torch.device, should_stop: Optional[Callable[[], bool]] = None
) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(saliency N x H x W >= 0, targets N, predicted N) of dataset[indices], or None if stopped.

    Saliency is the vanilla gradient of the true class (the map the brush window shows).
    """
    maps, targets, predicted = [], [], []
    for start in range(0, len(indices), CHUNK):
        if should_stop is not None and should_stop():
            return None
        chunk = [dataset[i] for i in indices[start : start + CHUNK]]
        images = torch.stack([s[0] for s in chunk]).to(device)
        labels = torch.tensor([int(s[1]) for s in chunk], dtype=torch.long, device=device)
        maps.append(gradient_saliency(model, images, labels))
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                predicted.append(model(images).argmax(1).cpu())
        finally:
            model.train(was_training)
        targets.append(labels.cpu())
    if not maps:
        return (
            torch.zeros(0, dataset.input_size, dataset.input_size),
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0, dtype=torch.long),
        )
    return torch.cat(maps), torch.cat(targets), torch.cat(predicted)


def decisive_drops(
    model: nn.Module, dataset: Any, indices: Sequence[int], device: torch.device, should_stop: Optional[Callable[[], bool]] = None
) -> Optional[torch.Tensor]:
    """N drops in [-1, 1] of the class probability when the top of each image's Grad-CAM map is
    hidden (`app.explain.faithfulness`), or None when the model has no convolution (no Grad-CAM)
    or `should_stop()` turned True. One backward and three forwards per image."""
    try:
        gradcam_layer(model)
    except ValueError:
        return None
    drops = []
    for start in range(0, len(indices), CHUNK):
        if should_stop is not None and should_stop():
            return None
        chunk = [dataset[i] for i in indices[start : start + CHUNK]]
        images = torch.stack([s[0] for s in chunk]).to(device)
        labels = torch.tensor([int(s[1]) for s in chunk], dtype=torch.long, device=device)
        maps = saliency_maps(model, images, labels, "gradcam", normalise=False)
        drops.append(hiding_effect(model, images, labels, maps).drop)
    return torch.cat(drops) if drops else torch.zeros(0)
