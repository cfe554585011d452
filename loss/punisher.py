"""Punisher loss (the "Machine Punishment" thesis): red pixels push gradient magnitude down,
green pixels push it up until a clip stops rewarding it.

    L_p = mean_n sum_ij M_nij * clip(|G_nij|, 0, clip)

with ``G = d s_y / d x`` the input gradient of the labelled class's logit, reduced over channels
by ``sum_c |.|``, and ``M`` the mask (+1 red, -1 green, 0 unmarked). Green-only masks give a
negative loss (down to ``-clip`` per green pixel).

Note the clip applies to red pixels too: a red pixel whose magnitude is already above ``clip``
gets no gradient until it falls below it. Per-pixel input-gradient magnitudes of normalised
images are usually far below 0.5, so this rarely matters; ``clip=None`` disables the clip.
"""

from __future__ import annotations

import logging
from typing import Optional

from torch import Tensor

from loss.input_gradient_loss import InputGradientLoss
from loss.input_gradients import abs_sum_over_channels, labelled_logit

logger = logging.getLogger(__name__)


class PunisherLoss(InputGradientLoss):
    """Mask-weighted, clipped input-gradient magnitude of the labelled class's logit.

    Called as ``loss(model, images N x C x H x W, targets N, masks N x H x W)``, +1 red, -1 green.

    Args:
        clip: upper bound on the per-pixel magnitude ``sum_c |G_c|`` (0.5 in the thesis);
            ``None`` for no clip.
    """

    def __init__(self, clip: Optional[float] = 0.5) -> None:
        super().__init__()
        if clip is not None and clip <= 0:
            raise ValueError(f"clip must be positive or None, got {clip}")
        self.clip = clip

    def score_fn(self, logits: Tensor, targets: Optional[Tensor]) -> Tensor:
        return labelled_logit(logits, targets)

    def penalty_from_gradients(self, grads: Tensor, masks: Tensor) -> Tensor:
        """Mean over samples of ``sum_ij M_ij * clip(sum_c |G_c|)``; per sample in
        ``[-clip * #green, clip * #red]``. Differentiable w.r.t. the parameters."""
        magnitude = abs_sum_over_channels(grads)  # N x H x W
        if self.clip is not None:
            magnitude = magnitude.clamp(min=0.0, max=self.clip)
        masks = masks.to(dtype=magnitude.dtype)
        return (masks * magnitude).sum(dim=(1, 2)).mean()

    def extra_repr(self) -> str:
        return f"clip={self.clip}"
