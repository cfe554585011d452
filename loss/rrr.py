"""Right for the Right Reasons (Ross, Hughes, Doshi-Velez, IJCAI 2017): squared input gradients
of the summed log-probabilities, penalised on the red pixels.

    L_rrr = mean_n sum_cij (A_nij * d/dx_ncij sum_k log softmax(z_n)_k)^2

``A`` marks the red pixels (``M == +1``), broadcast over the channels. RRR has no notion of
"look here": green pixels (``M == -1``) are ignored, exactly like unmarked ones. Use
``PunisherLoss`` or ``GradCAMLoss`` when green paint should count.
"""

from __future__ import annotations

import logging

from torch import Tensor, nn

from loss.input_gradients import (
    check_guidance_inputs,
    input_gradients,
    summed_log_probs,
    zero_loss,
)

logger = logging.getLogger(__name__)


class RRRLoss(nn.Module):
    """RRR's input-gradient penalty on red pixels (the targets are not used by the score)."""

    def forward(self, model: nn.Module, images: Tensor, targets: Tensor, masks: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            model: classifier, N x C x H x W -> N x K logits (eval mode recommended).
            images: N x C x H x W annotated samples, normalised.
            targets: N long labels (only checked for shape; RRR's score uses all classes).
            masks: N x H x W in {-1, 0, +1}; only ``+1`` (red) counts.

        Returns:
            Scalar >= 0: mean over samples of the per-sample sum over red pixels and channels.
            Differentiable w.r.t. the parameters.
        """
        check_guidance_inputs(images, targets, masks)
        if images.shape[0] == 0:
            return zero_loss(model, images)
        _, grads = input_gradients(model, images, summed_log_probs, targets)
        red = (masks == 1).to(device=grads.device, dtype=grads.dtype).unsqueeze(1)  # N x 1 x H x W
        return (red * grads).pow(2).sum(dim=(1, 2, 3)).mean()
