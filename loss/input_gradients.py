"""Differentiable input gradients, the raw material of every input-gradient guidance loss.

A guidance loss penalises ``G = d s / d x`` (the gradient of a per-sample score with respect to
the input pixels). To *train* on such a penalty, ``G`` itself must be part of the autograd
graph, so it is taken with ``torch.autograd.grad(..., create_graph=True)`` (double
backpropagation). captum's attributions are taken without ``create_graph`` and are for display
only.

The per-sample gradients come from one backward pass of ``scores.sum()``; that is exact only when
samples do not interact in the forward pass: BatchNorm in eval mode, or normalising with fixed
statistics, which is how ``loss.guided_loss`` runs the guidance forward
(``loss.batch_statistics``). Eval-mode BatchNorm layers are computed as the equivalent affine map
during this forward (``loss.affine_batchnorm``), whose double backward is much cheaper than the
native kernel's.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from loss.affine_batchnorm import affine_batchnorm

logger = logging.getLogger(__name__)

# (logits N x K, targets N long or None) -> scores N
ScoreFn = Callable[[Tensor, Optional[Tensor]], Tensor]


def labelled_logit(logits: Tensor, targets: Optional[Tensor]) -> Tensor:
    """Score of the labelled class: ``logits[n, targets[n]]``.

    Args:
        logits: N x K.
        targets: N, long class indices in [0, K).

    Returns:
        N scores.
    """
    if targets is None:
        raise ValueError("labelled_logit needs the targets (N class indices)")
    return logits.gather(1, targets.long().view(-1, 1)).squeeze(1)


def summed_log_probs(logits: Tensor, targets: Optional[Tensor] = None) -> Tensor:
    """RRR's score: ``sum_k log softmax(logits)_k`` per sample (targets are ignored).

    Args:
        logits: N x K.

    Returns:
        N scores (each <= 0).
    """
    return F.log_softmax(logits, dim=1).sum(dim=1)


def differentiable_gradient(scores: Tensor, inputs: Tensor, score_scale: float = 1.0) -> Tensor:
    """``d scores.sum() / d inputs``, itself part of the graph (``create_graph=True``).

    ``score_scale`` is fp16 mixed precision's loss scale (``torch.amp.GradScaler``): the backward
    runs on ``scores x score_scale`` so that small gradients do not underflow in half precision,
    and the result is divided back in float32 before any penalty sees it, the PyTorch AMP
    notes' gradient-penalty recipe. 1 (the default, and with fp32 or bf16) is the plain gradient.
    """
    if score_scale == 1.0:
        (grads,) = torch.autograd.grad(scores.sum(), inputs, create_graph=True)
        return grads
    (grads,) = torch.autograd.grad(scores.sum() * score_scale, inputs, create_graph=True)
    return grads.float() / score_scale


def input_gradients(
    model: nn.Module,
    images: Tensor,
    score_fn: ScoreFn,
    targets: Optional[Tensor] = None,
    score_scale: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Forward ``images`` through ``model`` and return the differentiable input gradients.

    Args:
        model: any classifier mapping N x C x H x W to N x K logits, in whatever mode the caller
            set (use eval mode when BatchNorm is present, see the module docstring).
        images: N x C x H x W, normalised. Not modified; a detached copy is differentiated.
        score_fn: maps ``(logits, targets)`` to N per-sample scores, e.g. ``labelled_logit`` or
            ``summed_log_probs``.
        targets: N long class indices, passed on to ``score_fn``.
        score_scale: fp16 loss scale (``differentiable_gradient``); 1 otherwise.

    Returns:
        ``(logits, grads)``: logits N x K; grads N x C x H x W, ``d score_n / d images_n``, part of
        the autograd graph (``create_graph=True``) so a loss built on them trains the model.
        Works under ``torch.no_grad()`` too (grad mode is switched on locally).
    """
    with torch.enable_grad():
        inputs = images.detach().requires_grad_(True)
        with affine_batchnorm(model):  # same values, cheaper double backward in eval mode
            logits = model(inputs)
        scores = score_fn(logits, targets)
        if scores.shape != (inputs.shape[0],):
            raise ValueError(f"score_fn must return one score per sample, shape ({inputs.shape[0]},), got {tuple(scores.shape)}")
        grads = differentiable_gradient(scores, inputs, score_scale)
    return logits, grads


def abs_sum_over_channels(grads: Tensor) -> Tensor:
    """Per-pixel gradient magnitude ``sum_c |grads[:, c]|``: N x C x H x W -> N x H x W, >= 0."""
    return grads.abs().sum(dim=1)


def square_sum_over_channels(grads: Tensor) -> Tensor:
    """Per-pixel squared gradient ``sum_c grads[:, c]^2``: N x C x H x W -> N x H x W, >= 0."""
    return grads.pow(2).sum(dim=1)


def check_guidance_inputs(images: Tensor, targets: Tensor, masks: Tensor) -> None:
    """Raise ``ValueError`` unless images N x C x H x W, targets N and masks N x H x W agree."""
    if images.dim() != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    n, _, height, width = images.shape
    if targets.shape != (n,):
        raise ValueError(f"targets must have shape ({n},), got {tuple(targets.shape)}")
    if masks.shape != (n, height, width):
        raise ValueError(f"masks must have shape ({n}, {height}, {width}) to match the images, got {tuple(masks.shape)}")


def zero_loss(model: nn.Module, images: Tensor) -> Tensor:
    """A zero scalar for an empty batch that ``backward()`` accepts.

    It is tied to a trainable parameter of ``model`` (times 0) when there is one, so calling
    ``backward()`` on it (alone or in a sum) works and leaves zero gradients.
    """
    for parameter in model.parameters():
        if parameter.requires_grad:
            return parameter.sum() * 0.0
    return images.new_zeros(())
