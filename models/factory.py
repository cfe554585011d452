"""Build a classifier by name, with a head for the number of classes and optional local weights.

Every model comes out safe for double backpropagation (the guidance losses differentiate an
input gradient) and for captum's DeepLift: no in-place activations, every activation twice
differentiable, and no activation module used twice in one forward pass.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn
from torchvision import models as tv_models
from torchvision.models.resnet import ResNet

from models.resnet_blocks import UntiedBasicBlock, UntiedBottleneck
from models.safe_activations import make_double_backprop_safe
from models.small_cnn import SmallCNN
from models.specs import check_model_name
from models.weights import load_matching_weights

log = logging.getLogger(__name__)


def _torchvision_model(name: str, num_classes: int) -> nn.Module:
    """A torchvision architecture, randomly initialised (never downloads), `num_classes` outputs."""
    if name == "resnet18":
        # torchvision's resnet18 is ResNet(BasicBlock, [2, 2, 2, 2]); the untied block only
        # differs in its activations, so state_dict keys match torchvision's weight files.
        return ResNet(UntiedBasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    if name == "resnet50":
        return ResNet(UntiedBottleneck, [3, 4, 6, 3], num_classes=num_classes)
    if name == "mobilenet_v3_small":
        return tv_models.mobilenet_v3_small(weights=None, num_classes=num_classes)
    if name == "efficientnet_b0":
        return tv_models.efficientnet_b0(weights=None, num_classes=num_classes)
    raise AssertionError(f"no constructor for {name}")  # MODEL_NAMES and this list disagree


def build_model(name: str, num_classes: int, weights_path: str | Path | None = None) -> nn.Module:
    """A fresh model `name` (one of `MODEL_NAMES`) with `num_classes` outputs.

    The head is built for `num_classes` (ResNet `fc`, MobileNetV3 / EfficientNet
    `classifier[-1]`). With `weights_path`, tensors of that local file that match by name and
    shape are loaded (a head of another size is skipped); see `load_matching_weights`.
    Raises `UnknownModelError` for an unknown name, `WeightsError` for an unusable file.
    """
    check_model_name(name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    model = SmallCNN(num_classes) if name == "small_cnn" else _torchvision_model(name, num_classes)
    make_double_backprop_safe(model)
    if weights_path is not None:
        load_matching_weights(model, weights_path)
    log.debug("built %s with %d classes", name, num_classes)
    return model
