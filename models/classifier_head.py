"""The classifier head of a model (its last linear layer), and cooling it before guidance.

A model that has learnt a shortcut maps the features that fire on it to the classes with large
head weights: its logits are large, its softmax saturated, and its input gradients on the
shortcut large. When painted masks start to guide such a model, a gradient penalty (which grows
with the square of the logits' scale) swamps the cross-entropy, and its first steps shrink the
whole network instead of teaching it the object; the run never recovers (docs/entrenched.md).
Scaling the head down by a factor keeps every prediction (the argmax of scaled logits is the
same) and the features, while the penalty starts that factor squared smaller and the
cross-entropy, no longer saturated, has gradients to learn with.
"""

from __future__ import annotations

import torch
from torch import nn


def classifier_head(model: nn.Module) -> nn.Linear:
    """The last `nn.Linear` of `model` in module order: the head of every model in
    `models.MODEL_NAMES` (SmallCNN's `classifier`, ResNet's `fc`, MobileNetV3's and EfficientNet's
    `classifier[-1]`). Raises ValueError when the model has no linear layer."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear layer to use as its classifier head")
    return linears[-1]


def scale_head(model: nn.Module, factor: float) -> None:
    """Multiply the classifier head's weight and bias by `factor` (in (0, 1]), in place: the
    logits are scaled by `factor`, so predictions are unchanged and confidences cooled."""
    if not 0.0 < factor <= 1.0:
        raise ValueError(f"the head scale must be in (0, 1], got {factor}")
    head = classifier_head(model)
    with torch.no_grad():
        head.weight.mul_(factor)
        if head.bias is not None:
            head.bias.mul_(factor)
