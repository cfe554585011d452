"""Never save, commit or offer a model whose weights went NaN, infinite or absurdly large.

`train --lr 1e6` used to finish with weights around 1e30 or NaN and exit 0, `finetune --lr 1e6`
wrote a candidate with 85 % NaN values, and a fine-tune round that "kept the last finite
weights" kept weights that were already NaN (the loss is computed before the step that breaks
them). The loops therefore check the weights after every optimiser step and the validation loss
after every evaluation; `save_checkpoint` refuses a non-finite state; the fine-tune round keeps
a snapshot of its last checked-good candidate to fall back on.

"Absurdly large": a parameter above `MAX_ABS_WEIGHT` in magnitude. Healthy networks stay many
orders of magnitude below it (resnet18 and the small CNN stay under 10 after any run measured);
a learning rate of 1e6 reaches 1e30 within a few steps, where every float32 operation downstream
is already overflowing.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional, Tuple

import torch
from torch import nn

from app.errors import UserError

MAX_ABS_WEIGHT = 1e5  # a parameter larger than this in magnitude counts as diverged


class NonFiniteModelError(UserError):
    """The weights (or the loss) became NaN/inf or exploded; the message says what to change."""


def _worst(tensors: Iterable[Tuple[str, torch.Tensor]], bound: Optional[float]) -> Optional[str]:
    for name, tensor in tensors:
        if not torch.is_floating_point(tensor) or tensor.numel() == 0:
            continue
        values = tensor.detach()
        if not bool(torch.isfinite(values).all()):
            share = float((~torch.isfinite(values)).float().mean())
            return f"{name} has non-finite values ({share:.0%} NaN/inf)"
        if bound is not None:
            largest = float(values.abs().max())
            if largest > bound:
                return f"{name} reached {largest:.3g} (more than {bound:.0g})"
    return None


def weights_problem(model: nn.Module, bound: Optional[float] = MAX_ABS_WEIGHT) -> Optional[str]:
    """None when every parameter is finite and at most `bound` in magnitude and every floating
    buffer (BatchNorm statistics) is finite; otherwise a short description of the first bad one.
    """
    problem = _worst(model.named_parameters(), bound)
    if problem is None:
        problem = _worst(model.named_buffers(), None)
    return problem


def parameters_ok(model: nn.Module, bound: float = MAX_ABS_WEIGHT) -> bool:
    """Fast per-step check (one device sync): every parameter finite and at most `bound`."""
    largest = [p.detach().abs().amax() for p in model.parameters() if p.numel() and torch.is_floating_point(p)]
    if not largest:
        return True
    worst = torch.stack([value.float() for value in largest]).max()
    return bool(torch.isfinite(worst)) and float(worst) <= bound


def state_dict_problem(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """Like `weights_problem` for a state dict: only finiteness (no magnitude bound)."""
    return _worst(((k, v) for k, v in state_dict.items() if isinstance(v, torch.Tensor)), None)


def check_model(model: nn.Module, what: str, advice: str = "lower the learning rate or lambda") -> None:
    """Raise NonFiniteModelError naming `what` when `weights_problem(model)` finds something."""
    problem = weights_problem(model)
    if problem is not None:
        raise NonFiniteModelError(f"{what}: the weights diverged ({problem}); {advice}")


def is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(float(value))


def snapshot(model: nn.Module) -> dict:
    """A detached copy of the state dict (on the model's device) to fall back on."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
