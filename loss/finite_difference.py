"""The parameter gradient of an input-gradient penalty without double backpropagation.

An input-gradient loss is ``P(g)`` with ``g = d s / d x`` (``loss.input_gradient_loss``). Its
parameter gradient is, by the chain rule, ``dP/dtheta = <dg/dtheta, v>`` with ``v = dP/dg``
held fixed, i.e. the parameter gradient of the directional derivative of the score along ``v``:

    dP/dtheta = d/dtheta <d s / d x, v>  ~=  d/dtheta [ s(x + t u) - s(x) ] * |v| / t,   u = v / |v|

(Finlay & Oberman 2019, arXiv 1905.11468, for ``P = |g|^2``, where ``v = 2 g``; the same holds for
any ``P``: Punisher's ``v`` is the signed red/green mask where the clip is not reached). So the
exact double backward is replaced by first-order passes: one input-gradient backward at ``x``
(no ``create_graph``) to get ``g`` and ``v``, then one forward at ``x + t u`` whose score enters
the total loss with weight ``|v| / t``, and the score at ``x`` with weight ``-|v| / t``; the
single ordinary ``backward()`` of the step then delivers the approximate parameter gradient.

``finite_difference_penalty`` returns a scalar whose *value* is the exact penalty ``P(g)`` (for
logging and the stop rules) and whose *gradient* is the finite difference. With piecewise-linear
networks (ReLU, max-pooling) and the forward's gates replayed at the shifted point
(``loss.frozen_gates``), the difference is the double backward's gradient up to float32 rounding;
``loss.guided_loss`` uses it only for such networks. The error against the double backward, per
loss, is checked in ``tests/test_finite_difference.py`` and stated in ``docs/step_cost.md``.

Batch statistics: both forwards must compute the same function of the parameters as the exact
penalty's forward, so they normalise with the same statistics (``loss.batch_statistics``) and the
score at ``x`` may come from the cross-entropy forward itself when the penalised rows are rows of
that forward (no counterexamples, no dropout): its backward then costs nothing extra.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch
from torch import Tensor

from loss.options import PENALTY_GRADIENTS

logger = logging.getLogger(__name__)

# Finite-difference step as a share of each image's L2 norm (normalised pixels). With the ReLU and
# max-pool gates replayed (loss.frozen_gates) the difference is exact for any step, but smaller
# steps lose digits to float32 rounding; kept small all the same, so that a kink the replay does
# not cover costs little (docs/step_cost.md, section 1).
FINITE_DIFFERENCE_STEP = 1e-2
# The step under mixed precision (autocast on): a logit change of 1 % is within a few roundings
# of bfloat16 (8 bits); a step of 1 (a shift as large as the image, exact with the gates
# replayed) matches the exact bf16 path (docs/step_cost.md, section 1).
LOW_PRECISION_STEP = 1.0


def check_penalty_gradient(name: str) -> None:
    """ValueError unless ``name`` is one of ``PENALTY_GRADIENTS``."""
    if name not in PENALTY_GRADIENTS:
        raise ValueError(f"penalty gradient must be one of {', '.join(PENALTY_GRADIENTS)}, got {name!r}")


def penalty_and_direction(penalty_fn, grads: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    """``P(grads)`` and ``v = dP/dgrads``, both detached.

    Args:
        penalty_fn: ``(grads N x C x H x W, masks N x H x W) -> scalar``, e.g.
            ``InputGradientLoss.penalty_from_gradients``.
        grads: N x C x H x W input gradients (any graph is ignored).
        masks: N x H x W in {-1, 0, +1}.

    Returns:
        ``(value, direction)``: a scalar and an N x C x H x W tensor in ``grads``' dtype.
    """
    leaf = grads.detach().float().requires_grad_(True)
    with torch.enable_grad():
        value = penalty_fn(leaf, masks)
        (direction,) = torch.autograd.grad(value, leaf, allow_unused=True)
    if direction is None:
        direction = torch.zeros_like(leaf)
    return value.detach(), direction.to(grads.dtype)


def perturbation(images: Tensor, direction: Tensor, step: Optional[float] = None) -> tuple[Tensor, Tensor]:
    """The finite-difference point and each row's weight.

    Args:
        images: N x C x H x W, the penalised images (normalised).
        direction: N x C x H x W, ``v = dP/dg``.
        step: the step as a share of each image's L2 norm; None: ``FINITE_DIFFERENCE_STEP``, or
            ``LOW_PRECISION_STEP`` under autocast.

    Returns:
        ``(shifted, weights)``: ``images + t_n v_n / |v_n|`` (N x C x H x W, detached) and
        ``|v_n| / t_n`` (N, 0 for rows whose ``v`` is 0: they move nowhere and weigh nothing).
    """
    if step is None:
        step = LOW_PRECISION_STEP if torch.is_autocast_enabled(images.device.type) else FINITE_DIFFERENCE_STEP
    rows = images.shape[0]
    v_norm = direction.detach().float().reshape(rows, -1).norm(dim=1)
    image_norm = images.detach().float().reshape(rows, -1).norm(dim=1).clamp(min=1e-6)
    distance = step * image_norm  # t_n
    moves = v_norm > 0
    unit = direction.detach().float() / v_norm.clamp(min=torch.finfo(torch.float32).tiny).view(-1, 1, 1, 1)
    shifted = images.detach().float() + (distance * moves).view(-1, 1, 1, 1) * unit
    weights = torch.where(moves, v_norm / distance, torch.zeros_like(v_norm))
    return shifted.to(images.dtype), weights


def finite_difference_penalty(
    value: Tensor,
    logits_at_images: Tensor,
    logits_at_shifted: Tensor,
    weights: Tensor,
    score_fn: Callable[[Tensor, Optional[Tensor]], Tensor],
    targets: Optional[Tensor],
) -> Tensor:
    """A scalar equal to ``value`` whose parameter gradient is ``d/dtheta <d s / d x, v>``.

    With ``z`` the logits and ``J = dz/dx``, ``<ds/dx, v> = <ds/dz, J v>``; the product rule
    gives two terms, each first-order:

    - ``<ds/dz (held), d(J v)/dtheta>``: ``J v`` is the logits' change from ``x`` to ``x + t u``
      times ``|v| / t``, exact for a network linear between the two points
      (``loss.frozen_gates``), whatever ``t``;
    - ``<d(ds/dz)/dtheta, J v (held)>``: the score's curvature in the logits (RRR's log-softmax;
      0 for Punisher's labelled logit), a K-wide double backward through the score alone.

    Args:
        value: scalar, the exact penalty ``P(g)`` (detached).
        logits_at_images: A x K, attached to the graph of a forward at the penalised images.
        logits_at_shifted: A x K, attached to the graph of a forward at ``perturbation(...)[0]``
            normalised with the same statistics.
        weights: A, ``|v_n| / t_n`` (``perturbation(...)[1]``).
        score_fn, targets: the loss's per-sample score of the logits, and its A targets.

    Returns:
        ``value + D - D.detach()`` with ``D`` the sum of both terms.
    """
    change = (logits_at_shifted - logits_at_images) * weights.to(logits_at_shifted.dtype).view(-1, 1)  # J v
    with torch.enable_grad():
        (slope,) = torch.autograd.grad(score_fn(logits_at_images, targets).sum(), logits_at_images, create_graph=True)
    difference = (slope.detach() * change).sum()
    if slope.requires_grad:
        difference = difference + (slope * change.detach()).sum()
    return value.to(difference.dtype) + (difference - difference.detach())


def first_order_gradient(scores: Tensor, inputs: Tensor, score_scale: float = 1.0, retain_graph: Optional[bool] = None) -> Tensor:
    """``d scores.sum() / d inputs`` without ``create_graph`` (detached), fp16 loss scaling as in
    ``loss.input_gradients.differentiable_gradient``."""
    scaled = scores.sum() if score_scale == 1.0 else scores.sum() * score_scale
    (grads,) = torch.autograd.grad(scaled, inputs, retain_graph=retain_graph)
    return grads if score_scale == 1.0 else grads.float() / score_scale
