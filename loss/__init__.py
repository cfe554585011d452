"""Differentiable guidance losses (Punisher, RRR, Grad-CAM alignment) and the guided batch loss.

Every guidance loss is an ``nn.Module`` called as ``loss(model, images, targets, masks) ->
scalar`` on the annotated samples only; ``guided_loss`` combines it with the cross-entropy of the
whole batch.

The names below are loaded on first use (PEP 562): ``from loss import GUIDANCE_NAMES`` reads the
torch-free ``loss.options``, ``from loss import RRRLoss`` imports torch with ``loss.rrr``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOME = {
    "DEFAULT_LAMBDAS": "options",
    "DEFAULT_PENALTY_GRADIENT": "options",
    "GUIDANCE_NAMES": "options",
    "GradCAMLoss": "gradcam",
    "GuidedLoss": "guided",
    "InputGradientLoss": "input_gradient_loss",
    "PENALTY_GRADIENTS": "options",
    "PunisherLoss": "punisher",
    "RRRLoss": "rrr",
    "SHARED_FORWARD_FROM": "guided",
    "abs_sum_over_channels": "input_gradients",
    "build_guidance": "factory",
    "check_penalty_gradient": "finite_difference",
    "guided_loss": "guided",
    "labelled_logit": "input_gradients",
    "square_sum_over_channels": "input_gradients",
    "summed_log_probs": "input_gradients",
    "swap_red_regions": "counterexamples",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """The public `name`, imported from its module on first use and kept."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
