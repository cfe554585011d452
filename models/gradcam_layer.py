"""Which block of a model Grad-CAM explains: the last convolutional stage, or the one before it
at twice the resolution (the fine Grad-CAM of `app.explain.saliency`)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import EfficientNet, MobileNetV3, ResNet

from models.small_cnn import SmallCNN


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The module whose output (`N x C x h x w`) Grad-CAM weights by its gradients.

    SmallCNN: its last conv block; ResNet: `layer4`; MobileNetV3 / EfficientNet: `features[-1]`;
    any other model: its last `nn.Conv2d`. Raises ValueError if the model has no convolution.
    """
    if isinstance(model, SmallCNN):
        return model.last_block
    if isinstance(model, ResNet):
        return model.layer4
    if isinstance(model, (MobileNetV3, EfficientNet)):
        return model.features[-1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM")
    return convs[-1]


def finer_gradcam_layer(model: nn.Module, sample: torch.Tensor) -> nn.Module:
    """The stage before `gradcam_layer(model)`, at twice (or more) its output resolution.

    SmallCNN: its second conv block; ResNet: `layer3`; any other model: the last of its
    `features` stages (or else of its Conv2d layers) whose output side is at least twice the
    Grad-CAM layer's, found by one forward of `sample` (`1 x C x H x W`, any normalised image) in
    eval mode (each module's mode is restored); the Grad-CAM layer itself when there is none.
    """
    if isinstance(model, SmallCNN):
        return model.features[2]
    if isinstance(model, ResNet):
        return model.layer3
    last = gradcam_layer(model)
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        candidates = list(features)
    else:
        candidates = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    sides: dict = {}

    def keep_side(module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4:  # a feature map N x C x h x w
            sides[module] = output.shape[-1]

    handles = [module.register_forward_hook(keep_side) for module in {*candidates, last}]
    modes = [(module, module.training) for module in model.modules()]
    model.eval()  # the probe must not move BatchNorm's running statistics
    try:
        with torch.no_grad():
            model(sample[:1])
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    if last not in sides:
        return last  # the Grad-CAM layer gave no feature map on this input: nothing finer to find
    finer = [module for module in candidates if sides.get(module, 0) >= 2 * sides[last]]
    return finer[-1] if finer else last
