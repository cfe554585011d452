"""Which block of a model Grad-CAM explains: the last convolutional stage."""

from __future__ import annotations

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
