"""Differentiable guidance losses (Punisher, RRR, Grad-CAM alignment) and the guided batch loss.

Every guidance loss is an ``nn.Module`` called as ``loss(model, images, targets, masks) ->
scalar`` on the annotated samples only; ``guided_loss`` combines it with the cross-entropy of the
whole batch.
"""

from loss.counterexamples import swap_red_regions
from loss.factory import DEFAULT_LAMBDAS, GUIDANCE_NAMES, build_guidance
from loss.finite_difference import DEFAULT_PENALTY_GRADIENT, PENALTY_GRADIENTS, check_penalty_gradient
from loss.gradcam import GradCAMLoss
from loss.guided import SHARED_FORWARD_FROM, GuidedLoss, guided_loss
from loss.input_gradient_loss import InputGradientLoss
from loss.input_gradients import (
    abs_sum_over_channels,
    input_gradients,
    labelled_logit,
    square_sum_over_channels,
    summed_log_probs,
)
from loss.punisher import PunisherLoss
from loss.rrr import RRRLoss

__all__ = [
    "DEFAULT_LAMBDAS",
    "DEFAULT_PENALTY_GRADIENT",
    "GUIDANCE_NAMES",
    "GradCAMLoss",
    "GuidedLoss",
    "InputGradientLoss",
    "PENALTY_GRADIENTS",
    "PunisherLoss",
    "RRRLoss",
    "SHARED_FORWARD_FROM",
    "abs_sum_over_channels",
    "build_guidance",
    "check_penalty_gradient",
    "guided_loss",
    "input_gradients",
    "labelled_logit",
    "square_sum_over_channels",
    "summed_log_probs",
    "swap_red_regions",
]
