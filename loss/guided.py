"""The guided batch loss: cross-entropy over the whole batch plus a guidance penalty on the
annotated rows only.

    total = CE(model(images), targets) + lam * guidance(model, images[a], targets[a], masks[a])

with ``a = has_mask``. Two ways to compute it, the same network either way (every BatchNorm
normalises with the whole batch's statistics, ``loss.batch_statistics``):

- **second forward** (few rows annotated): the CE forward of the batch, then a forward of just
  the annotated rows with the CE forward's BatchNorm statistics and dropout off. The double
  backward runs over the annotated rows only, so 5 % annotated costs little more than a plain
  step.
- **shared forward** (at least ``SHARED_FORWARD_FROM`` of the rows annotated, input-gradient
  losses or Grad-CAM, no dropout in train mode): one forward of the batch with the input as a
  leaf; the CE and the annotated rows' input gradients (Grad-CAM: activation gradients) both
  come from it. One double backward over the
  whole batch instead of a plain step plus a double backward of nearly the whole batch.
  Train-mode BatchNorm needs care: through the shared statistics, the gradient of the summed
  scores with respect to one image picks up ``1/N`` times the sum of *every* row's sensitivity
  to the statistics, a term of the same size as the image's own gradient (docs/batch_statistics.md
  has what that cost). ``loss.batch_statistics.sharing_batch_statistics`` closes that path for
  the input-gradient pass only, which makes the two ways compute the same penalty and the same
  parameter gradients (tested).

When nothing is annotated (or ``guidance is None`` or ``lam == 0``) there is one forward and no
double backward: the step costs the same as a plain step.

How the penalty's parameter gradient is taken (``penalty_gradient``, input-gradient losses only):
``"exact"`` by double backpropagation (``create_graph=True``), ``"finite_difference"`` by two
first-order passes (``loss.finite_difference``: an input-gradient backward without a graph, one
forward at a shifted point; no double backward). Either way the penalty's value is exact and the
forwards normalise with the same statistics. The finite difference is taken only for networks
of linear layers, BatchNorm, pooling, dropout and ReLU / max-pool gates
(``loss.frozen_gates.is_piecewise_linear``), where it is the double backward's gradient; other
networks (Hardswish, SiLU with stochastic depth ...) get the exact one. Grad-CAM's second-order
pass only crosses the layers after its conv layer and stays exact.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator, NamedTuple, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from loss.affine_batchnorm import affine_batchnorm
from loss.batch_statistics import (
    StatisticsGate,
    has_active_dropout,
    normalising_with,
    recording_batch_statistics,
    sharing_batch_statistics,
)
from loss.finite_difference import (
    check_penalty_gradient,
    finite_difference_penalty,
    first_order_gradient,
    penalty_and_direction,
    perturbation,
)
from loss.frozen_gates import GatePattern, is_piecewise_linear, recording_gates, replaying_gates
from loss.gradcam import GradCAMLoss
from loss.input_gradient_loss import InputGradientLoss
from loss.options import DEFAULT_PENALTY_GRADIENT

logger = logging.getLogger(__name__)

# Share of annotated rows from which an input-gradient loss reuses the CE forward. Measured
# with bench/step_cost.py (see docs/ARCHITECTURE.md); below it the second forward is cheaper.
SHARED_FORWARD_FROM = 0.75


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


@contextlib.contextmanager
def scaling_scores(guidance: Optional[nn.Module], score_scale: float) -> Iterator[None]:
    """Within the block, ``guidance`` takes its input gradients of ``scores x score_scale`` and
    divides them back (fp16 loss scaling, ``loss.input_gradients.differentiable_gradient``)."""
    if guidance is None or score_scale == 1.0 or not hasattr(guidance, "score_scale"):
        yield
        return
    guidance.score_scale = float(score_scale)
    try:
        yield
    finally:
        del guidance.score_scale  # back to the class's 1.0


def guided_loss(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    masks: Tensor,
    has_mask: Tensor,
    guidance: Optional[nn.Module],
    lam: float,
    shared_forward: Optional[bool] = None,
    painted: Optional[Tensor] = None,
    *,
    ce_weight: float = 1.0,
    guidance_weight: float = 1.0,
    score_scale: float = 1.0,
    penalty_gradient: str = DEFAULT_PENALTY_GRADIENT,
) -> GuidedLoss:
    """Cross-entropy over the batch plus ``lam`` times the guidance loss on the annotated rows.

    Args:
        model: classifier, N x C x H x W -> N x K logits, in the mode the caller set (usually
            train). Every submodule's mode is restored after the guidance forward, also when the
            guidance raises; BatchNorm running averages see the CE forward only.
        images: N x C x H x W (N >= 1), normalised.
        targets: N long class indices.
        masks: N x H x W in {-1, 0, +1}; rows without annotation are ignored.
        has_mask: N bool (or 0/1), which rows are annotated.
        guidance: a guidance loss called as ``guidance(model, images, targets, masks)``, or None.
        lam: weight of the guidance term, >= 0.
        shared_forward: force (True) or forbid (False) taking the input gradients from the CE
            forward; None shares it when that is both cheaper and the same quantity (see the
            module docstring; a forced share with dropout on draws dropout into the penalty).
            Input-gradient losses (``InputGradientLoss``) and Grad-CAM (``GradCAMLoss``, whose
            double backward then only crosses the layers after its conv layer) can share it.
        painted: N x C x H x W, the batch as painted when ``images`` are counterexamples
            (``loss.swap_red_regions``). A second forward then computes the penalty on the
            painted annotated rows, where the shortcut the user marked is still in the image;
            the CE (and a shared forward's penalty) sees ``images``. Why the painted images:
            docs/losses.md, "Counterexamples".
        ce_weight, guidance_weight: ``total = ce_weight * ce + guidance_weight * lam * guidance``.
            Data-parallel training (``app.engine.distributed``) computes this on one shard of a global
            batch and sets them so that the gradients the processes average are those of the
            global batch's means (a shard's row count and annotated count over the global ones,
            times the number of processes). 1 for a whole batch.
        score_scale: fp16 loss scale for the input-gradient backward (``scaling_scores``).
        penalty_gradient: ``"exact"`` (double backward) or ``"finite_difference"``
            (``loss.finite_difference``; input-gradient losses on piecewise-linear networks
            only, the rest stays exact).

    Returns:
        ``GuidedLoss(total, ce, guidance, logits)``.
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    check_penalty_gradient(penalty_gradient)
    if painted is not None and painted.shape != images.shape:
        raise ValueError(f"painted must have the images' shape {tuple(images.shape)}, got {tuple(painted.shape)}")
    if has_mask.shape != (images.shape[0],):
        raise ValueError(f"has_mask must have shape ({images.shape[0]},), got {tuple(has_mask.shape)}")
    annotated = has_mask.to(device=images.device, dtype=bool)
    if guidance is None or lam == 0 or not bool(annotated.any()):
        logits = model(images)
        ce = F.cross_entropy(logits, targets)
        total = ce if ce_weight == 1.0 else ce_weight * ce
        return GuidedLoss(total=total, ce=ce.detach(), guidance=ce.new_zeros(()), logits=logits.detach())

    can_share = isinstance(guidance, (InputGradientLoss, GradCAMLoss))
    if shared_forward and not can_share:
        raise ValueError(f"{type(guidance).__name__} cannot share the cross-entropy forward")
    if shared_forward is None:
        shared_forward = can_share and float(annotated.float().mean()) >= SHARED_FORWARD_FROM and not has_active_dropout(model)
    masks = masks.to(images.device)
    finite = penalty_gradient == "finite_difference" and isinstance(guidance, InputGradientLoss) and is_piecewise_linear(model)

    if shared_forward and isinstance(guidance, GradCAMLoss):
        with sharing_batch_statistics(model) as statistics_gate, guidance.capturing() as captured:
            logits = model(images)
        ce = F.cross_entropy(logits, targets)
        with statistics_gate.closed(), scaling_scores(guidance, score_scale):  # each row's own activation gradient
            penalty = guidance.penalty_from_forward(captured, logits, targets, masks, annotated)
    elif shared_forward:
        inputs = images.detach().requires_grad_(True)
        recording = recording_gates(model) if finite else contextlib.nullcontext()
        with sharing_batch_statistics(model) as statistics_gate, recording as gates:
            logits = model(inputs)
        ce = F.cross_entropy(logits, targets)
        if finite:
            penalty = _finite_difference_from_forward(
                model, guidance, inputs, logits, targets, masks, annotated, statistics_gate, gates, score_scale
            )
        else:
            with statistics_gate.closed(), scaling_scores(guidance, score_scale):  # each row's own input gradient
                penalty = guidance.penalty_from_forward(inputs, logits, targets, masks, annotated)
    else:
        with recording_batch_statistics(model) as statistics:
            logits = model(images)
        ce = F.cross_entropy(logits, targets)
        penalised = images if painted is None else painted.to(images.device)
        with normalising_with(model, statistics), scaling_scores(guidance, score_scale):
            if finite:
                # The score at the penalised rows is the CE forward's own when they are its rows
                # and the same function of the parameters (no counterexamples, no dropout).
                same_rows = painted is None and not has_active_dropout(model)
                base_logits = logits[annotated] if same_rows else None
                penalty = _finite_difference_second_forward(
                    model, guidance, penalised[annotated], targets[annotated], masks[annotated], base_logits, score_scale
                )
            else:
                penalty = guidance(model, penalised[annotated], targets[annotated], masks[annotated])
    return GuidedLoss(
        total=ce_weight * ce + (guidance_weight * lam) * penalty,
        ce=ce.detach(),
        guidance=penalty.detach(),
        logits=logits.detach(),
    )


def _finite_difference_second_forward(
    model: nn.Module,
    guidance: InputGradientLoss,
    images: Tensor,
    targets: Tensor,
    masks: Tensor,
    base_logits: Optional[Tensor],
    score_scale: float,
) -> Tensor:
    """The annotated rows' penalty with a finite-difference gradient, inside ``normalising_with``.

    images: A x C x H x W (the annotated rows as penalised); targets A; masks A x H x W.
    base_logits: A x K logits of the same rows from the CE forward, or None to take them from
    this function's own forward at ``images`` (its graph is then kept for the step's backward).
    """
    with torch.enable_grad():
        inputs = images.detach().requires_grad_(True)
        with affine_batchnorm(model), recording_gates(model) as gates:  # eval-mode BatchNorm as the exact path has it
            own_logits = model(inputs)
        own_scores = guidance.score_fn(own_logits, targets)
        grads = first_order_gradient(own_scores, inputs, score_scale, retain_graph=base_logits is None)
        value, direction = penalty_and_direction(guidance.penalty_from_gradients, grads, masks)
        shifted, weights = perturbation(images, direction)
        with affine_batchnorm(model), replaying_gates(model, gates):  # the same linear piece
            shifted_logits = model(shifted)
    base = own_logits if base_logits is None else base_logits
    return finite_difference_penalty(value, base, shifted_logits, weights, guidance.score_fn, targets)


def _finite_difference_from_forward(
    model: nn.Module,
    guidance: InputGradientLoss,
    inputs: Tensor,
    logits: Tensor,
    targets: Tensor,
    masks: Tensor,
    annotated: Tensor,
    gate: StatisticsGate,
    gates: GatePattern,
    score_scale: float,
) -> Tensor:
    """The annotated rows' penalty with a finite-difference gradient, from a forward that ran
    under ``sharing_batch_statistics`` and ``recording_gates`` (``inputs`` its N x C x H x W leaf,
    ``logits`` N x K, ``gates`` its ReLU and max-pool pattern): the input gradient with the
    statistics gate closed (each row's own), the shifted forward normalised with the gate's
    statistics and the annotated rows' pattern."""
    with gate.closed():
        scores = guidance.score_fn(logits[annotated], targets[annotated])
        grads = first_order_gradient(scores, inputs, score_scale, retain_graph=True)[annotated]
    value, direction = penalty_and_direction(guidance.penalty_from_gradients, grads, masks[annotated])
    shifted, weights = perturbation(inputs[annotated], direction)
    with normalising_with(model, gate.statistics), replaying_gates(model, gates, annotated):
        shifted_logits = model(shifted)
    return finite_difference_penalty(value, logits[annotated], shifted_logits, weights, guidance.score_fn, targets[annotated])
