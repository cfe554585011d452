"""Replay a forward's ReLU and max-pooling choices in a later forward.

A ReLU network's score is piecewise linear in the input: every ReLU opens or shuts, every max-pool
window picks one input. The finite-difference penalty gradient (``loss.finite_difference``)
differences the parameter gradients of two forwards, at ``x`` and at ``x + t u``. When the step
crosses a kink, a unit's gate flips and its incoming weights' gradient jumps by a finite amount;
divided by ``t`` that is an error that does not shrink with ``t`` (the number of flips shrinks as
fast as ``1/t`` grows): far off at every step size (docs/step_cost.md, section 1).

With the gates of the forward at ``x`` replayed at ``x + t u``, both forwards lie in the same
linear piece, where the double backward also lives (it takes ReLU'' = 0): the difference is then
exact for a score linear in the logits (Punisher's labelled logit) and off by the curvature of the
log-softmax times ``t`` for RRR's summed log-probabilities.

Only ``nn.ReLU`` and ``nn.MaxPool2d`` modules are replayed (the models here use one module per
use, ``models.resnet_blocks``). A network with any other nonlinearity (Hardswish, SiLU, stochastic
depth ...) is not linear between the two forwards; ``is_piecewise_linear`` tells them apart, and
``loss.guided_loss`` takes the exact gradient for them.

Usage::

    with recording_gates(model) as gates:
        logits = model(images)                 # N rows
    with replaying_gates(model, gates, rows):  # rows: which of the N the shifted batch holds
        shifted_logits = model(shifted)
"""

from __future__ import annotations

import contextlib
import functools
from typing import Dict, Iterator, List, Optional

from torch import Tensor, nn
from torch.nn import functional as F

GATED = (nn.ReLU, nn.MaxPool2d)
# Leaf modules that are linear (or affine) for fixed statistics and dropout off: with GATED ones
# replayed, a network made of these alone is linear between the two forwards.
_LINEAR = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Linear,
    nn.modules.batchnorm._BatchNorm,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.modules.dropout._DropoutNd,
)


def is_piecewise_linear(model: nn.Module) -> bool:
    """True when every leaf module of ``model`` is linear, BatchNorm, pooling, dropout or a
    replayable gate (``nn.ReLU``, ``nn.MaxPool2d``): then the finite difference is the double
    backward's gradient (``loss.finite_difference``). Other activations break it (Hardswish and
    Hardsigmoid kinks, stochastic depth drawing other blocks in each forward; measured in
    docs/step_cost.md, section 1). Functional calls inside ``forward`` cannot be seen here; the
    models in ``models`` use modules."""
    leaves = [module for module in model.modules() if not any(True for _ in module.children())]
    return all(isinstance(module, GATED + _LINEAR) for module in leaves)


class GatePattern:
    """Per module, the gates of each of its calls in one forward: a bool mask (ReLU, the shape
    of its input) or the flat argmax indices (max-pooling, the shape of its output)."""

    def __init__(self) -> None:
        self.calls: Dict[nn.Module, List[Tensor]] = {}


def _recording_relu(module: nn.ReLU, pattern: GatePattern, inputs: Tensor) -> Tensor:
    output = F.relu(inputs)
    pattern.calls.setdefault(module, []).append(output > 0)
    return output


def _recording_max_pool(module: nn.MaxPool2d, pattern: GatePattern, inputs: Tensor) -> Tensor:
    output, indices = F.max_pool2d(
        inputs,
        module.kernel_size,
        module.stride,
        module.padding,
        module.dilation,
        ceil_mode=module.ceil_mode,
        return_indices=True,
    )
    pattern.calls.setdefault(module, []).append(indices)
    return output


def _replayed(pattern: GatePattern, module: nn.Module, call: List[int], rows: Optional[Tensor]) -> Tensor:
    recorded = pattern.calls.get(module)
    if recorded is None or call[0] >= len(recorded):
        raise RuntimeError(f"{type(module).__name__} ran more often than in the recorded forward")
    gate = recorded[call[0]]
    call[0] += 1
    return gate if rows is None else gate[rows]


def _replaying_relu(module: nn.ReLU, pattern: GatePattern, rows: Optional[Tensor], call: List[int], inputs: Tensor) -> Tensor:
    mask = _replayed(pattern, module, call, rows)
    return inputs * mask.to(inputs.dtype)


def _replaying_max_pool(
    module: nn.MaxPool2d, pattern: GatePattern, rows: Optional[Tensor], call: List[int], inputs: Tensor
) -> Tensor:
    indices = _replayed(pattern, module, call, rows)
    picked = inputs.flatten(2).gather(2, indices.flatten(2))
    return picked.view(indices.shape)


def _gated_modules(model: nn.Module) -> List[nn.Module]:
    return [m for m in model.modules() if isinstance(m, GATED) and not getattr(m, "return_indices", False)]


@contextlib.contextmanager
def recording_gates(model: nn.Module) -> Iterator[GatePattern]:
    """Within the block, every ``nn.ReLU`` and ``nn.MaxPool2d`` of ``model`` computes as usual and
    records its gates. Forwards are restored on exit, also on error."""
    pattern = GatePattern()
    modules = _gated_modules(model)
    try:
        for module in modules:
            recorder = _recording_relu if isinstance(module, nn.ReLU) else _recording_max_pool
            module.forward = functools.partial(recorder, module, pattern)
        yield pattern
    finally:
        for module in modules:
            del module.forward


@contextlib.contextmanager
def replaying_gates(model: nn.Module, pattern: GatePattern, rows: Optional[Tensor] = None) -> Iterator[None]:
    """Within the block, every ``nn.ReLU`` and ``nn.MaxPool2d`` of ``model`` applies the gates
    ``pattern`` recorded (a ReLU multiplies by its recorded mask, a max-pool gathers its
    recorded indices), taking rows ``rows`` (an index or bool mask over the recorded batch;
    None: all). Input shapes must match the recorded forward's. Restored on exit."""
    modules = _gated_modules(model)
    try:
        for module in modules:
            replayer = _replaying_relu if isinstance(module, nn.ReLU) else _replaying_max_pool
            module.forward = functools.partial(replayer, module, pattern, rows, [0])
        yield
    finally:
        for module in modules:
            del module.forward
