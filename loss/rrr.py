"""Right for the Right Reasons (Ross, Hughes, Doshi-Velez, IJCAI 2017): squared input gradients
of the summed log-probabilities, penalised on the red pixels.

    L_rrr = mean_n sum_cij (A_nij * d/dx_ncij sum_k log softmax(z_n)_k)^2

``A`` marks the red pixels (``M == +1``), broadcast over the channels. RRR has no notion of
"look here": green pixels (``M == -1``) are ignored, exactly like unmarked ones. Use
``PunisherLoss`` or ``GradCAMLoss`` when green paint should count.
"""

from __future__ import annotations

import logging
from typing import Optional

from torch import Tensor

from loss.input_gradient_loss import InputGradientLoss
from loss.input_gradients import summed_log_probs

logger = logging.getLogger(__name__)


class RRRLoss(InputGradientLoss):
    """RRR's input-gradient penalty on red pixels (the targets are not used by the score).

    Called as ``loss(model, images N x C x H x W, targets N, masks N x H x W)``; only ``+1`` (red)
    counts. Returns a scalar >= 0: the mean over samples of the per-sample sum over red pixels
    and channels, differentiable w.r.t. the parameters.
    """

    def score_fn(self, logits: Tensor, targets: Optional[Tensor]) -> Tensor:
        return summed_log_probs(logits, targets)

    def penalty_from_gradients(self, grads: Tensor, masks: Tensor) -> Tensor:
        red = (masks == 1).to(dtype=grads.dtype).unsqueeze(1)  # N x 1 x H x W
        return (red * grads).pow(2).sum(dim=(1, 2, 3)).mean()
