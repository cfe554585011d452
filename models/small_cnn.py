"""A small convolutional classifier that trains in seconds on a CPU on 32 x 32 images."""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution, BatchNorm, ReLU; spatial size unchanged."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        # Not in-place, and one instance per use: double backpropagation and captum's DeepLift
        # (which hooks each activation module once) both need that.
        nn.ReLU(),
    )


class SmallCNN(nn.Module):
    """Three conv blocks (32, 64, 128 channels) with max-pooling between, global average pool,
    linear head.

    Input: `N x in_channels x H x W` normalised images, any `H, W >= 16` (4 x 4 after the two
    poolings). Output: `N x num_classes` logits. `last_block` is the block Grad-CAM uses
    (its output is `N x 128 x H/4 x W/4`).
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.features = nn.Sequential(
            _conv_block(in_channels, 32),
            nn.MaxPool2d(2),
            _conv_block(32, 64),
            nn.MaxPool2d(2),
            _conv_block(64, 128),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(128, num_classes)

    @property
    def last_block(self) -> nn.Module:
        """The last conv block (a property, so its weights are not registered twice)."""
        return self.features[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`images: N x C x H x W` normalised -> logits `N x num_classes`."""
        features = self.features(images)
        return self.classifier(torch.flatten(self.pool(features), 1))
