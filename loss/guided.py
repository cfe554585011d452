"""The guided batch loss: cross-entropy over the whole batch plus a guidance penalty on the
annotated rows only.

    total = CE(model(images), targets) + lam * guidance(model, images[a], targets[a], masks[a])

with ``a = has_mask``. The guidance term runs a second forward of just the annotated rows, in
train mode with BatchNorm updating nothing and dropout off (``loss.batch_statistics`` says why:
both cheaper alternatives let the optimiser game the penalty and collapse the model). When nothing is annotated (or ``guidance is None`` or ``lam == 0``) there is no second
forward at all, so the step costs the same as a plain step.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional

from torch import Tensor, nn
from torch.nn import functional as F

from loss.batch_statistics import guidance_mode

logger = logging.getLogger(__name__)


class GuidedLoss(NamedTuple):
    """Result of ``guided_loss``; call ``total.backward()``.

    total: scalar, ``ce + lam * guidance``, attached to the autograd graph.
    ce: scalar, mean cross-entropy over the whole batch (detached, for logging).
    guidance: scalar, the unweighted guidance loss on the annotated rows (detached; 0 when no
        guidance term was computed).
    logits: N x K, the cross-entropy forward's logits (detached), so a loop can count hits
        without a second forward.
    """

    total: Tensor
    ce: Tensor
    guidance: Tensor
    logits: Tensor


def guided_loss(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    masks: Tensor,
    has_mask: Tensor,
    guidance: Optional[nn.Module],
    lam: float,
) -> GuidedLoss:
    """Cross-entropy over the batch plus ``lam`` times the guidance loss on the annotated rows.

    Args:
        model: classifier, N x C x H x W -> N x K logits, in the mode the caller set (usually
            train) for the cross-entropy forward. Every submodule's mode is restored after the
            eval-mode guidance forward, also when the guidance raises.
        images: N x C x H x W (N >= 1), normalised.
        targets: N long class indices.
        masks: N x H x W in {-1, 0, +1}; rows without annotation are ignored.
        has_mask: N bool (or 0/1), which rows are annotated.
        guidance: a guidance loss called as ``guidance(model, images, targets, masks)``, or None.
        lam: weight of the guidance term, >= 0.

    Returns:
        ``GuidedLoss(total, ce, guidance)``.
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if has_mask.shape != (images.shape[0],):
        raise ValueError(
            f"has_mask must have shape ({images.shape[0]},), got {tuple(has_mask.shape)}"
        )
    annotated = has_mask.to(device=images.device, dtype=bool)
    if guidance is None or lam == 0 or not bool(annotated.any()):
        logits = model(images)
        ce = F.cross_entropy(logits, targets)
        return GuidedLoss(total=ce, ce=ce.detach(), guidance=ce.new_zeros(()), logits=logits.detach())

    logits = model(images)
    ce = F.cross_entropy(logits, targets)
    with guidance_mode(model):
        penalty = guidance(
            model, images[annotated], targets[annotated], masks.to(images.device)[annotated]
        )
    return GuidedLoss(
        total=ce + lam * penalty, ce=ce.detach(), guidance=penalty.detach(), logits=logits.detach()
    )
