"""Make a model's activations safe for double backpropagation and for captum's DeepLift.

The guidance losses differentiate an input gradient (`create_graph=True`), so every operation
must have a second derivative in autograd and must not overwrite tensors autograd keeps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SmoothableHardsigmoid(nn.Hardsigmoid):
    """`nn.Hardsigmoid` written as `relu6(x + 3) / 6`, the same function.

    torch has no derivative for `hardsigmoid_backward`, so double backpropagation through
    MobileNetV3's squeeze-excitation gates fails; `relu6` has one.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


def make_double_backprop_safe(model: nn.Module) -> nn.Module:
    """Switch off `inplace` everywhere and swap `nn.Hardsigmoid` for `SmoothableHardsigmoid`.

    An in-place activation (ReLU, ReLU6, Hardswish, SiLU ... with `inplace=True`) overwrites a
    tensor autograd may need again in the second backward pass, and captum's hooks cannot
    see the input of an in-place module. Changes `model` in place and returns it.
    """
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if type(child) is nn.Hardsigmoid:
                setattr(parent, child_name, SmoothableHardsigmoid())
    for module in model.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return model
