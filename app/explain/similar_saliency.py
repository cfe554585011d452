"""The "similar" propagation scope: images whose saliency sits in a painted image's red region.

An image is similar to a source when the share of its vanilla-gradient saliency (true class)
inside the source's red region, grown by a pixel or two at the model's input size, is at least
`DEFAULT_SIMILAR_SHARE`, or at least `DEFAULT_SIMILAR_LIFT` times that region's mean share over all
candidates (the model looks there more than it usually does). The relative rule matters on noisy
images, where gradients spread over the whole picture and no absolute share separates a region
the model follows from an empty one.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from app.explain.dataset_locator import ProgressCallback
from app.explain.explanation_metrics import gradient_saliency
from datasets import MaskStore

SIMILAR_GROW = 1 / 32  # the red region is grown by this fraction of the input side (1 px at 32)
SALIENCY_CHUNK = 64  # images per saliency batch


def _red_region(mask: torch.Tensor, grow: int) -> torch.Tensor:
    """bool H x W: the red pixels of `mask` (H x W) grown by `grow` pixels (a square brush)."""
    red = (mask > 0).float()[None, None]
    if grow > 0:
        red = F.max_pool2d(red, kernel_size=2 * grow + 1, stride=1, padding=grow)
    return red[0, 0] > 0


def similar_shares(
    model: nn.Module,
    dataset: Any,
    sources: Sequence[str],
    candidates: Sequence[int],
    store: MaskStore,
    *,
    device: torch.device,
    on_progress: Optional[ProgressCallback] = None,
) -> torch.Tensor:
    """S x N: share of each candidate's saliency inside each source's (grown) red region, [0, 1].

    candidates: dataset indices. Saliency: vanilla gradient of the true class at the input size.
    """
    size = (dataset.input_size, dataset.input_size)
    grow = max(1, round(dataset.input_size * SIMILAR_GROW))
    regions = []
    for relpath in sources:
        mask = store.load(relpath, size)
        regions.append(_red_region(mask, grow) if mask is not None else torch.zeros(size, dtype=torch.bool))
    region_stack = torch.stack(regions).float().flatten(1)  # S x HW
    shares = []
    for start in range(0, len(candidates), SALIENCY_CHUNK):
        chunk = [dataset[i] for i in candidates[start : start + SALIENCY_CHUNK]]
        images = torch.stack([s[0] for s in chunk]).to(device)
        targets = torch.tensor([int(s[1]) for s in chunk], dtype=torch.long, device=device)
        saliency = gradient_saliency(model, images, targets).flatten(1).clamp_min(0)  # n x HW
        total = saliency.sum(1, keepdim=True)
        inside = region_stack @ saliency.T  # S x n
        shares.append(torch.where(total.T > 0, inside / total.T.clamp_min(1e-30), torch.zeros_like(inside)))
        if on_progress is not None:
            on_progress(min(start + SALIENCY_CHUNK, len(candidates)), len(candidates))
    if not shares:
        return torch.zeros(len(sources), 0)
    return torch.cat(shares, dim=1)


def similar_thresholds(shares: torch.Tensor, share: float, lift: Optional[float]) -> torch.Tensor:
    """S: the share each source's region must reach (`shares` S x N over the candidates): `share`,
    or `lift` x the region's mean share when that is lower (a region nobody looks at, mean 0,
    selects nothing by the lift)."""
    thresholds = torch.full((shares.shape[0],), share)
    if lift is not None and shares.shape[1]:
        mean = shares.mean(1)
        thresholds = torch.minimum(thresholds, torch.where(mean > 0, lift * mean, torch.full_like(mean, float("inf"))))
    return thresholds
