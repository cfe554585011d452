"""What the content locator learns from, and the per-pixel perceptron it trains.

Content: the painted red without its rim (`locator_regions.core`). Not the content: every other
pixel of the painted images at least two brush margins away from the red, green pixels weighted
up, and the red of "not this" corrections, which carry a fixed share of the class's weight however
few their pixels. Each painted image is also seen in recoloured copies (`recoloured`), so that
the content's look relative to its surround counts more than its colour. Both classes are
subsampled to at most `LocatorConfig.max_pixels_per_class` pixels and carry half the loss each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor, nn

from app.explain.locator_config import LocatorConfig
from app.explain.locator_regions import core, grow
from datasets.masks import resize_bool

Features = Callable[[Tensor], Tensor]  # N x 3 x H x W in [0, 1] -> N x F x h x w, unstandardised


def recoloured(
    images: Tensor,
    red: Sequence[np.ndarray],
    green: Optional[Sequence[Optional[np.ndarray]]],
    generator: torch.Generator,
    copies: int,
    config: LocatorConfig,
) -> Tuple[Tensor, List[np.ndarray], Optional[List[Optional[np.ndarray]]]]:
    """The images (N x 3 x H x W in [0, 1]) followed by `copies` recoloured copies of them:
    channels shuffled, and per channel a random contrast around the image's mean
    (`config.jitter_range`) and a random shift (`config.jitter_shift`), clipped to [0, 1];
    masks repeated to match. What stays is the content's look relative to its surround.
    `copies` 0: the images alone (`LocatorConfig.jitter_copies` 0 turns recolouring off)."""
    if copies == 0:  # torch.stack of no permutations would fail below
        return images.float(), list(red), None if green is None else list(green)
    n = images.shape[0]
    low, high = config.jitter_range
    base = images.repeat(copies, 1, 1, 1).float()
    order = torch.stack([torch.randperm(3, generator=generator) for _ in range(n * copies)])
    base = torch.gather(base, 1, order.view(-1, 3, 1, 1).expand_as(base))
    contrast = low + (high - low) * torch.rand(n * copies, 3, 1, 1, generator=generator)
    shift = config.jitter_shift * (2 * torch.rand(n * copies, 3, 1, 1, generator=generator) - 1)
    centre = base.mean(dim=(2, 3), keepdim=True)
    jittered = ((base - centre) * contrast + centre + shift).clamp(0, 1)
    all_images = torch.cat([images.float(), jittered])
    all_red = list(red) * (copies + 1)
    all_green = None if green is None else list(green) * (copies + 1)
    return all_images, all_red, all_green


@dataclass(frozen=True)
class LabelledPixels:
    """The locator's training pixels (feature rows, unstandardised) and what it keeps for later."""

    content: Tensor  # P x F: sampled pixels of the painted content
    not_content: Tensor  # Q x F: sampled pixels that are not the content
    not_weights: Tensor  # Q, summing to 1: each "not" pixel's share of its class's weight
    areas: List[float]  # the painted (rimless) red regions' areas, in working-resolution pixels
    right_looks: List[Tensor]  # F each: the mean feature of the painted content per painted image
    wrong_looks: List[Tensor]  # F each: the mean feature of each "not this" correction
    n_images: int  # painted images and their recoloured copies


def _sample(pixels: Tensor, limit: int, generator: torch.Generator) -> Tensor:
    """The indices of at most `limit` of `pixels`' rows, at random."""
    return torch.randperm(pixels.shape[0], generator=generator)[:limit].to(pixels.device)


def _correction_pixels(
    negatives: Optional[Sequence[Tuple[Tensor, np.ndarray]]],
    generator: torch.Generator,
    config: LocatorConfig,
    size: Tuple[int, int],
    features_of: Features,
) -> Tuple[List[Tensor], List[Tensor]]:
    """(the red pixels' feature rows of each "not this" correction and its recoloured copies,
    each correction's look as painted: its mean feature row, for the region veto)."""
    corrections: List[Tensor] = []
    wrong_looks: List[Tensor] = []
    for image, mask in negatives or ():
        mask_small = resize_bool(np.asarray(mask, dtype=bool), size)
        if not mask_small.any():
            continue
        # Recoloured like the painted images, so a correction holds for other colours too.
        copies, _, _ = recoloured(image[None], [mask_small], None, generator, config.jitter_copies, config)
        picked = torch.from_numpy(mask_small.ravel())
        for number, copy in enumerate(copies):
            features = features_of(copy[None])[0]
            flat = features.reshape(features.shape[0], -1).T
            corrections.append(flat[picked.to(flat.device)])
            if number == 0:
                wrong_looks.append(corrections[-1].mean(0))
    return corrections, wrong_looks


def labelled_pixels(
    images: Tensor,
    red: Sequence[np.ndarray],
    green: Optional[Sequence[Optional[np.ndarray]]],
    negatives: Optional[Sequence[Tuple[Tensor, np.ndarray]]],
    generator: torch.Generator,
    *,
    config: LocatorConfig,
    side: int,
    margin: int,
    rim: int,
    features_of: Features,
) -> LabelledPixels:
    """The labelled pixels of the painted images (S x 3 x H x W in [0, 1]; `red`, `green`: S bool
    masks of any size, green may be None) and of the "not this" `negatives` ((image 3 x H x W,
    bool mask) pairs), at the working resolution `side`; `margin` and `rim` in its pixels."""
    size = (side, side)
    n_painted = len(red)
    images, red, green = recoloured(images, red, green, generator, config.jitter_copies, config)
    features = features_of(images)  # S x F x h x w
    n_features = features.shape[1]
    positives, not_pixels, not_weights, areas = [], [], [], []
    for i in range(images.shape[0]):
        painted = resize_bool(np.asarray(red[i], dtype=bool), size)
        content = core(painted, rim)
        labelled, n = ndimage.label(content)
        areas.extend(np.bincount(labelled.ravel())[1:].tolist() if n else [])
        flat = features[i].reshape(n_features, -1).T  # h*w x F
        positives.append(flat[torch.from_numpy(content.ravel()).to(flat.device)])
        away = ~grow(painted, 2 * margin)
        weight = np.ones(size, dtype=np.float32)
        if green is not None and green[i] is not None:
            green_i = resize_bool(np.asarray(green[i], dtype=bool), size)
            weight[green_i] = config.green_weight
            away |= green_i & ~painted
        not_pixels.append(flat[torch.from_numpy(away.ravel()).to(flat.device)])
        not_weights.append(torch.from_numpy(weight.ravel()[away.ravel()]))
    corrections, wrong_looks = _correction_pixels(negatives, generator, config, size, features_of)
    right_looks = [p.mean(0) for p in positives[:n_painted] if p.shape[0]]
    content = torch.cat(positives)
    not_content = torch.cat(not_pixels)
    weights = torch.cat(not_weights).to(not_content.device)
    content = content[_sample(content, config.max_pixels_per_class, generator)]
    keep = _sample(not_content, config.max_pixels_per_class, generator)
    not_content, weights = not_content[keep], weights[keep] / weights[keep].sum()
    if corrections:
        # "Not this" carries a fixed share of the negative class, however few its pixels.
        wrong = torch.cat(corrections)
        wrong = wrong[_sample(wrong, config.max_pixels_per_class, generator)]
        share = config.correction_share
        not_content = torch.cat([not_content, wrong])
        weights = torch.cat([weights * (1 - share), torch.full((wrong.shape[0],), share / wrong.shape[0]).to(weights)])
    return LabelledPixels(content, not_content, weights, areas, right_looks, wrong_looks, images.shape[0])


def train_perceptron(x: Tensor, y: Tensor, weights: Tensor, config: LocatorConfig, device: torch.device) -> nn.Module:
    """A two-layer perceptron over features (1x1 convolutions: N x F x h x w -> N x 1 x h x w
    logits), trained full-batch with Adam on `x` (M x F standardised), labels `y` (M in {0, 1})
    and per-pixel loss weights `weights` (M), seeded by `config.seed`."""
    n_features = x.shape[1]
    torch.manual_seed(config.seed)
    net = nn.Sequential(
        nn.Conv2d(n_features, config.hidden, 1),
        nn.ReLU(),
        nn.Conv2d(config.hidden, config.hidden, 1),
        nn.ReLU(),
        nn.Conv2d(config.hidden, 1, 1),
    ).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    x4 = x.T.reshape(1, n_features, -1, 1)
    with torch.enable_grad():
        for _ in range(config.steps):
            optimiser.zero_grad()
            logits = net(x4).view(-1)
            loss = (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * weights).sum()
            loss.backward()
            optimiser.step()
    return net
