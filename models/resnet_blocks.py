"""torchvision ResNet blocks whose activations are each used once and not in place.

torchvision's `BasicBlock` and `Bottleneck` call one `self.relu` module (in place) two or
three times. That breaks captum's DeepLift, which stores a module's input and output in hooks
and so needs one module per use, and in-place activations are unsafe for the double
backpropagation the guidance losses need. These subclasses keep the parameters (and so the
state_dict keys of torchvision's pretrained weights) and only change the activations.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck


class UntiedBasicBlock(BasicBlock):
    """`BasicBlock` with a separate, non-in-place ReLU after the residual sum."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.relu = nn.ReLU()
        self.relu_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same computation as torchvision's BasicBlock.forward, with one ReLU per use.
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu_out(out + identity)


class UntiedBottleneck(Bottleneck):
    """`Bottleneck` with three separate, non-in-place ReLUs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.relu = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.relu_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same computation as torchvision's Bottleneck.forward, with one ReLU per use.
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu_out(out + identity)
