"""Gaussian smoothing of image batches, shared by the counterexamples and the content locator.

Separable convolutions with reflect padding (so a border is not darkened), any sigma on any image
size: the padding is cut to what the image allows, the kernel with it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel(sigma: float) -> Tensor:
    """1-D normalised Gaussian of radius ceil(3 sigma) (at least 1), float32."""
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """N x C x H x W blurred with a Gaussian of `sigma` pixels (returned as is for sigma <= 0)."""
    if sigma <= 0:
        return images
    kernel = gaussian_kernel(sigma).to(images)
    radius = kernel.numel() // 2
    channels = images.shape[1]
    out = images
    for dim, pad_of in ((3, lambda p: (p, p, 0, 0)), (2, lambda p: (0, 0, p, p))):
        pad = min(radius, images.shape[dim] - 1)
        k = kernel[radius - pad : radius + pad + 1]
        k = k / k.sum()
        if pad:
            out = F.pad(out, pad_of(pad), mode="reflect")
        shape = (1, 1, 1, -1) if dim == 3 else (1, 1, -1, 1)
        out = F.conv2d(out, k.view(*shape).repeat(channels, 1, 1, 1), groups=channels)
    return out
