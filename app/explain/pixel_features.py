"""Per-pixel filter responses at several scales: what the content locator sees of a pixel.

The colour channels smoothed at each scale, and on the luminance the gradient magnitude, the
Laplacian of Gaussian, the Hessian's eigenvalues (lines and blobs), the local standard deviation
(texture: a clean stamp is flat where a photo or noise is not) and the contrast against a wide
surround: ilastik's pixel-classification features, computed with separable convolutions in torch
so whole batches run on the model's device.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from app.explain.locator_config import LocatorConfig
from loss.image_filters import gaussian_blur


def _derivatives(plane: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(dy, dx, dyy, dxx, dxy) of N x 1 x H x W by central differences (replicate borders)."""
    padded = F.pad(plane, (1, 1, 1, 1), mode="replicate")
    dy = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) / 2
    dx = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) / 2
    dyy = padded[:, :, 2:, 1:-1] - 2 * plane + padded[:, :, :-2, 1:-1]
    dxx = padded[:, :, 1:-1, 2:] - 2 * plane + padded[:, :, 1:-1, :-2]
    dxy = (padded[:, :, 2:, 2:] - padded[:, :, 2:, :-2] - padded[:, :, :-2, 2:] + padded[:, :, :-2, :-2]) / 4
    return dy, dx, dyy, dxx, dxy


def pixel_features(images: Tensor, config: LocatorConfig = LocatorConfig()) -> Tensor:
    """Multi-scale filter responses per pixel.

    Args:
        images: N x 3 x H x W in [0, 1] (unnormalised RGB), at the working resolution.

    Returns:
        N x F x H x W float32 (F = `feature_count(config)`), not standardised.
    """
    luminance = images.mean(1, keepdim=True)
    features: List[Tensor] = [images]
    for sigma in config.sigmas:
        smooth = gaussian_blur(images, sigma)
        features.append(smooth)
        lum = smooth.mean(1, keepdim=True)
        dy, dx, dyy, dxx, dxy = _derivatives(lum)
        features.append(torch.sqrt(dy**2 + dx**2 + 1e-12) * sigma)  # gradient magnitude
        features.append((dyy + dxx) * sigma**2)  # Laplacian of Gaussian
        half_trace = (dyy + dxx) / 2
        root = torch.sqrt(((dyy - dxx) / 2) ** 2 + dxy**2 + 1e-12)
        features.append((half_trace + root) * sigma**2)  # Hessian eigenvalues: lines and blobs
        features.append((half_trace - root) * sigma**2)
        variance = gaussian_blur(luminance**2, sigma) - gaussian_blur(luminance, sigma) ** 2
        features.append(torch.sqrt(variance.clamp_min(0) + 1e-12))  # local standard deviation (texture)
    features.append(images - gaussian_blur(images, config.surround_sigma))  # contrast against the surround
    return torch.cat(features, dim=1)


def feature_count(config: LocatorConfig = LocatorConfig()) -> int:
    """F of `pixel_features`: 3 raw + per sigma (3 smooth + 5 luminance) + 3 contrast."""
    return 3 + 8 * len(config.sigmas) + 3
