"""How reasonable an explanation is, measured against a painted mask.

`saliency`: N x H x W, non-negative (any scale); `masks`: N x H x W in {-1, 0, +1}
(+1 red = must not look here, -1 green = should look here).
"""

from __future__ import annotations

from typing import Tuple

import torch
from captum.attr import Saliency
from torch import nn


def gradient_saliency(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """|d logit_target / d image| summed over channels: N x H x W >= 0, on the CPU.

    The raw (un-normalised) vanilla-gradient map, via captum, in eval mode (restored after).
    This is the quantity the input-gradient losses act on, so shares measured on it show
    whether a round moved what it optimised.
    """
    was_training = model.training
    model.eval()
    try:
        explainer = Saliency(model)
        maps = []
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start : start + batch_size].detach().clone().requires_grad_(True)
            attributions = explainer.attribute(chunk, target=targets[start : start + batch_size], abs=True)
            maps.append(attributions.sum(dim=1).detach().cpu())
    finally:
        model.train(was_training)
    if not maps:
        return torch.zeros(0, *images.shape[2:])
    return torch.cat(maps)


def mass_share(saliency: torch.Tensor, masks: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Share of each image's saliency mass on red and on green pixels: two N tensors in [0, 1].

    An image whose saliency is all zero has share 0 on both.
    """
    saliency = saliency.float().clamp_min(0)
    masks = masks.to(saliency.device)
    total = saliency.flatten(1).sum(1)
    red = (saliency * (masks > 0)).flatten(1).sum(1)
    green = (saliency * (masks < 0)).flatten(1).sum(1)
    safe = total.clamp_min(torch.finfo(saliency.dtype).tiny)
    zero = total <= 0
    return torch.where(zero, 0.0, red / safe), torch.where(zero, 0.0, green / safe)


def normalise_per_image(saliency: torch.Tensor) -> torch.Tensor:
    """Scale each map to [0, 1] by its maximum (all-zero maps stay zero). N x H x W."""
    peak = saliency.flatten(1).amax(1).clamp_min(1e-12).view(-1, *([1] * (saliency.dim() - 1)))
    return (saliency / peak).clamp(0, 1)


def alignment_score(saliency: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The thesis' alignment score per image, in [-1, 1]: N.

    `A = (|Sm n Sh| + |Nm n Nh|) / |I| - |(Sm n Nh) u (Nm n Sh)| / |I|` with Sm the pixels whose
    per-image-normalised saliency is >= threshold, Nm the rest, Sh the green pixels (should be
    salient), Nh the red ones (should not), |I| the pixel count.
    """
    salient = normalise_per_image(saliency.float()) >= threshold
    should = masks < 0  # green
    should_not = masks > 0  # red
    pixels = saliency[0].numel() if saliency.shape[0] else 1
    agree = (salient & should).flatten(1).sum(1) + (~salient & should_not).flatten(1).sum(1)
    disagree = (salient & should_not).flatten(1).sum(1) + (~salient & should).flatten(1).sum(1)
    return (agree.float() - disagree.float()) / pixels


def explanation_iou(
    saliency: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RES-style precision, recall and IoU of the salient pixels against the green pixels: 3 x N.

    Images without green pixels get NaN (nothing to compare with).
    """
    salient = normalise_per_image(saliency.float()) >= threshold
    green = masks < 0
    hits = (salient & green).flatten(1).sum(1).float()
    n_salient = salient.flatten(1).sum(1).float()
    n_green = green.flatten(1).sum(1).float()
    union = (salient | green).flatten(1).sum(1).float()
    nan = torch.tensor(float("nan"))
    precision = torch.where(n_salient > 0, hits / n_salient.clamp_min(1), torch.zeros(()))
    recall = torch.where(n_green > 0, hits / n_green.clamp_min(1), nan)
    iou = torch.where(n_green > 0, hits / union.clamp_min(1), nan)
    precision = torch.where(n_green > 0, precision, nan)
    return precision, recall, iou
