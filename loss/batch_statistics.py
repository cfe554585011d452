"""Run the guidance forward on the same network the cross-entropy trains: same BatchNorm
statistics, no dropout.

When only some rows of a batch are annotated, the guidance penalty needs a second forward of
just those rows. That forward normalises with the CE forward's batch statistics (per channel,
mean C and biased variance C), *kept in the graph*: it computes exactly the function the CE
trains on that batch, and shrinking the weights shrinks the statistics with them, so there is
nothing to game. The input gradient of an annotated row stays its own (the statistics are
constants of the other forward's inputs): exact per-sample gradients. Eval-mode statistics,
detached ones and the annotated rows' own were tried and fail; docs/batch_statistics.md says how.

Usage::

    with recording_batch_statistics(model) as statistics:
        logits = model(images)                         # the CE forward, train mode
    with normalising_with(model, statistics):
        penalty = guidance(model, images[annotated], ...)
"""

from __future__ import annotations

import contextlib
import functools
from typing import Dict, Iterator, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from loss.affine_batchnorm import normalise

_DROPOUT = (_DropoutNd, nn.AlphaDropout)
_RAN_TWICE = "{} ran twice in one forward; the guidance forward cannot tell which batch statistics to use"
_LOW_PRECISION = (torch.float16, torch.bfloat16)

# BatchNorm module -> (mean C, biased variance C) of the batch it normalised, in the graph.
BatchStatistics = Dict[nn.Module, Tuple[Tensor, Tensor]]


def has_active_dropout(model: nn.Module) -> bool:
    """True when a dropout module of ``model`` is in train mode (``normalising_with`` turns
    those off for the guidance forward; a shared forward cannot)."""
    return any(isinstance(module, _DROPOUT) and module.training for module in model.modules())


def _channel_dims(inputs: Tensor) -> list[int]:
    """Every dimension but the channels (dim 1): N x C [x L | x H x W] -> [0, 2, ...]."""
    return [0] + list(range(2, inputs.dim()))


class StatisticsGate:
    """Switches the batch statistics' input path off for one backward pass.

    A forward that normalises with ``sharing_batch_statistics`` keeps each BatchNorm's mean and
    variance as functions of its inputs. While the gate is ``closed()``, backpropagation through
    those statistics stops at them, so an input gradient taken then is each row's own (as if the
    statistics were constants); once it is open again, the usual backward (the cross-entropy's,
    and the penalty's dependence on the statistics) flows through them in full.
    """

    def __init__(self) -> None:
        self.is_closed = False
        # What each train-mode BatchNorm normalised with, in the graph and behind this gate: a
        # later forward can normalise with them (``normalising_with``), as the finite-difference
        # penalty's shifted forward does (``loss.finite_difference``).
        self.statistics: BatchStatistics = {}

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        self.is_closed = True
        try:
            yield
        finally:
            self.is_closed = False


class _MeanAndVariance(torch.autograd.Function):
    """Per-channel mean and biased variance with a one-pass forward and a fused backward
    (cheaper than ``torch.var_mean`` and autograd's graph; docs/batch_statistics.md). The
    backward is not itself
    differentiable: the input gradient a guidance loss differentiates again never passes through
    the statistics (they are another forward's, or the gate is closed), so no double backward
    reaches them.
    """

    @staticmethod
    def forward(ctx, inputs: Tensor, gate: Optional[StatisticsGate]) -> Tuple[Tensor, Tensor]:
        dims = _channel_dims(inputs)
        # Under mixed precision (app.engine.amp) the statistics are float32, as native BatchNorm's are
        # under autocast: E[x^2] - E[x]^2 in bfloat16 would cancel most of its 8 bits away.
        values = inputs.float() if inputs.dtype in _LOW_PRECISION else inputs
        mean = values.mean(dim=dims)
        variance = ((values * values).mean(dim=dims) - mean * mean).clamp(min=0.0)
        ctx.save_for_backward(inputs, mean)
        ctx.gate = gate
        return mean, variance

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_mean: Tensor, grad_variance: Tensor) -> Tuple[Optional[Tensor], None]:
        if ctx.gate is not None and ctx.gate.is_closed:
            return None, None
        inputs, mean = ctx.saved_tensors
        count = inputs.numel() // inputs.shape[1]
        shape = (1, -1) + (1,) * (inputs.dim() - 2)
        # d mean / dx = 1/n, d variance / dx = 2 (x - mean) / n, per channel
        slope = (2.0 / count) * grad_variance
        offset = grad_mean / count - slope * mean
        values = inputs.float() if inputs.dtype in _LOW_PRECISION else inputs
        return torch.addcmul(offset.view(shape), values, slope.view(shape)).to(inputs.dtype), None


def mean_and_variance(inputs: Tensor, gate: Optional[StatisticsGate] = None) -> Tuple[Tensor, Tensor]:
    """Per-channel mean C and biased variance C of N x C [x ...] inputs, as BatchNorm computes
    them (``E[x^2] - E[x]^2``: loses precision only when a channel's mean is thousands of times
    its spread). Differentiable once w.r.t. ``inputs``; not at all while ``gate`` is closed."""
    return _MeanAndVariance.apply(inputs, gate)


class _BatchNormWithStatistics(torch.autograd.Function):
    """Train-mode BatchNorm by the native fused kernels that also returns the batch's mean and
    biased variance, all three differentiable (once).

    The statistics a guidance forward normalises with (``normalising_with``) come from the kernel
    that normalises the batch instead of a second computation (``mean_and_variance``), which every
    guided step paid (docs/step_cost.md); the gradient reaching them (the penalty's dependence on
    the statistics) is added to the native backward's input gradient.
    """

    @staticmethod
    def forward(ctx, inputs, weight, bias, running_mean, running_var, momentum, eps):
        output, mean, inverse_std = torch.native_batch_norm(inputs, weight, bias, running_mean, running_var, True, momentum, eps)
        variance = inverse_std.pow(-2) - eps
        ctx.save_for_backward(inputs, weight, running_mean, running_var, mean, inverse_std)
        ctx.eps = eps
        return output, mean, variance

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output, grad_mean, grad_variance):
        inputs, weight, running_mean, running_var, mean, inverse_std = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_inputs, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad_output, inputs, weight, running_mean, running_var, mean, inverse_std, True, ctx.eps, list(needs[:3])
        )
        if needs[0] and (grad_mean is not None or grad_variance is not None):
            count = inputs.numel() // inputs.shape[1]
            shape = (1, -1) + (1,) * (inputs.dim() - 2)
            slope = (2.0 / count) * grad_variance if grad_variance is not None else torch.zeros_like(mean)
            offset = (grad_mean / count if grad_mean is not None else torch.zeros_like(mean)) - slope * mean
            grad_inputs.addcmul_(inputs, slope.view(shape)).add_(offset.view(shape))  # in place: no new full-size tensor
        return grad_inputs, grad_weight, grad_bias, None, None, None, None


def _fused_recording_forward(module: _BatchNorm, statistics: BatchStatistics, inputs: Tensor) -> Tensor:
    """A train-mode BatchNorm's forward (running averages updated as ``_BatchNorm.forward``
    does) that records its batch's statistics in ``statistics``."""
    if module in statistics:
        raise RuntimeError(_RAN_TWICE.format(type(module).__name__))
    momentum = 0.0 if module.momentum is None else module.momentum
    if module.track_running_stats and module.num_batches_tracked is not None:
        module.num_batches_tracked.add_(1)
        if module.momentum is None:
            momentum = 1.0 / float(module.num_batches_tracked)
    module._check_input_dim(inputs)
    output, mean, variance = _BatchNormWithStatistics.apply(
        inputs, module.weight, module.bias, module.running_mean, module.running_var, momentum, module.eps
    )
    statistics[module] = (mean, variance)
    return output


def _fusable(module: _BatchNorm, inputs: Tensor) -> bool:
    """The fused recording computes what ``_BatchNorm.forward`` would: a plain BatchNorm (not
    SyncBatchNorm), float32 (or float64) input outside autocast, running averages tracked or not,
    more than one value per channel."""
    return (
        not isinstance(module, nn.SyncBatchNorm)  # its forward synchronises across processes
        and inputs.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled(inputs.device.type)
        and inputs.numel() // inputs.shape[1] > 1
    )


@contextlib.contextmanager
def recording_batch_statistics(model: nn.Module) -> Iterator[BatchStatistics]:
    """Within the block, every train-mode BatchNorm of ``model`` records the mean and (biased)
    variance of the batch it normalises, attached to the autograd graph. Each must run at most
    once. Forwards are restored on exit, also on error.

    In float32 the statistics come from the normalising kernel itself
    (``_BatchNormWithStatistics``); under mixed precision they are computed beside it, in float32
    (``mean_and_variance``)."""
    statistics: BatchStatistics = {}

    def record(module: _BatchNorm, inputs: Tensor) -> Tensor:
        if not module.training:
            return type(module).forward(module, inputs)  # running averages: nothing batch-dependent to share
        if _fusable(module, inputs):
            return _fused_recording_forward(module, statistics, inputs)
        if module in statistics:
            raise RuntimeError(_RAN_TWICE.format(type(module).__name__))
        statistics[module] = mean_and_variance(inputs)
        return type(module).forward(module, inputs)

    modules = [module for module in model.modules() if isinstance(module, _BatchNorm)]
    try:
        for module in modules:
            module.forward = functools.partial(record, module)
        yield statistics
    finally:
        for module in modules:
            del module.forward


@contextlib.contextmanager
def normalising_with(model: nn.Module, statistics: BatchStatistics) -> Iterator[None]:
    """Within the block, every train-mode BatchNorm normalises with its recorded statistics
    (updating no running average) and dropout is off. Eval-mode BatchNorm is left alone. Modes
    and forwards are restored on exit, also on error.

    Raises RuntimeError when a train-mode BatchNorm has no recorded statistics.
    """
    modes = [(module, module.training) for module in model.modules()]
    replaced = []
    try:
        for module in model.modules():
            if isinstance(module, _BatchNorm) and module.training:
                if module not in statistics:
                    raise RuntimeError(
                        f"no batch statistics recorded for {type(module).__name__}; run the "
                        "cross-entropy forward inside recording_batch_statistics first"
                    )
                mean, variance = statistics[module]
                module.forward = functools.partial(normalise, module, mean, variance)
                replaced.append(module)
            elif isinstance(module, _DROPOUT):
                module.eval()
        yield
    finally:
        for module in replaced:
            del module.forward  # back to the class's forward
        for module, training in modes:
            module.training = training


def _update_running_statistics(module: _BatchNorm, mean: Tensor, variance: Tensor, count: int) -> None:
    """What a train-mode BatchNorm forward does to its running averages (unbiased variance)."""
    if not module.track_running_stats or module.running_mean is None or module.running_var is None:
        return
    with torch.no_grad():
        module.num_batches_tracked.add_(1)
        momentum = module.momentum if module.momentum is not None else 1.0 / float(module.num_batches_tracked)
        unbiased = variance * (count / max(count - 1, 1))
        module.running_mean.lerp_(mean.detach(), momentum)
        module.running_var.lerp_(unbiased.detach(), momentum)


def _shared_statistics_forward(module: _BatchNorm, gate: StatisticsGate, inputs: Tensor) -> Tensor:
    mean, variance = mean_and_variance(inputs, gate)
    gate.statistics[module] = (mean, variance)
    _update_running_statistics(module, mean, variance, inputs.numel() // inputs.shape[1])
    return normalise(module, mean, variance, inputs)


def _running_statistics_forward(module: _BatchNorm, inputs: Tensor) -> Tensor:
    return normalise(module, module.running_mean, module.running_var, inputs)


@contextlib.contextmanager
def sharing_batch_statistics(model: nn.Module) -> Iterator[StatisticsGate]:
    """One forward for the cross-entropy and the guidance's input gradients, exact with
    train-mode BatchNorm.

    Within the block every BatchNorm computes its output as an affine map (cheap to
    differentiate twice): a train-mode one with its batch's statistics, kept in the graph and
    behind the yielded gate, updating its running averages as usual; an eval-mode one with its
    running averages. Take the input gradient inside ``gate.closed()``: each row's gradient is
    then its own, the same as a second forward normalised with these statistics
    (``normalising_with``) gives, and the later backward of ``CE + lam * penalty`` reaches the
    parameters through the statistics as well. Dropout is left as the caller set it.
    Forwards are restored on exit, also on error.
    """
    gate = StatisticsGate()
    replaced = []
    try:
        for module in model.modules():
            if not isinstance(module, _BatchNorm):
                continue
            if module.training:
                module.forward = functools.partial(_shared_statistics_forward, module, gate)
            elif module.running_mean is not None and module.running_var is not None:
                module.forward = functools.partial(_running_statistics_forward, module)
            else:
                continue
            replaced.append(module)
        yield gate
    finally:
        for module in replaced:
            del module.forward
