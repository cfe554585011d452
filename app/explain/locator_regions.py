"""Which found regions the content locator keeps, and how far they reach.

The pixels above the threshold form connected regions; a region is kept when its area is near
the painted regions' (`label_regions`), when it looks more like the painted content than like a
"not this" correction (`vetoed`), and when it is not a weak side-find beside a clear one
(`strongest`). The painted red is learnt without its rim (`core`) and a found region is grown
back by it (`grow`), so a find has the extent of what the user painted.
All masks are bool h x w at the locator's working resolution.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

Regions = Tuple[np.ndarray, List[float]]  # (labels h x w int32, kept regions numbered from 1; their confidences)


def _disk(pixels: int) -> np.ndarray:
    """bool (2p+1) x (2p+1): a round brush of radius `pixels`."""
    radius = np.arange(-pixels, pixels + 1)
    return (radius[:, None] ** 2 + radius[None, :] ** 2) <= pixels**2 + pixels


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """bool h x w grown by `pixels` (a round brush); unchanged for 0."""
    if pixels <= 0 or not mask.any():
        return mask
    return ndimage.binary_dilation(mask, structure=_disk(pixels))


def core(red: np.ndarray, rim: int) -> np.ndarray:
    """bool h x w: each connected red region without its outer `rim` pixels (a round brush's
    overshoot); a region that would vanish is kept whole."""
    if rim <= 0 or not red.any():
        return red
    inner = ndimage.binary_erosion(red, structure=_disk(rim))
    labelled, n = ndimage.label(red)
    kept = np.bincount(labelled[inner], minlength=n + 1)  # core pixels per region
    return inner | ((kept[labelled] == 0) & red)


def _relabelled(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """`labels` (regions 1..len(keep)) with only the `keep` ones, renumbered from 1."""
    index = np.arange(1, len(keep) + 1)
    relabel = np.zeros(len(keep) + 1, dtype=np.int32)
    relabel[index[keep]] = np.arange(1, int(keep.sum()) + 1)
    return relabel[labels]


def label_regions(probability: np.ndarray, threshold: float, area_bounds: Tuple[float, float]) -> Regions:
    """The connected regions of `probability` (h x w in [0, 1]) >= `threshold` whose area (in
    pixels) lies within `area_bounds`, each with its mean probability as its confidence."""
    labelled, n = ndimage.label(probability >= threshold)
    if n == 0:
        return np.zeros_like(labelled), []
    index = np.arange(1, n + 1)
    areas = ndimage.sum_labels(np.ones_like(probability), labelled, index)
    means = ndimage.mean(probability, labelled, index)
    low, high = area_bounds
    keep = (areas >= low) & (areas <= high)
    return _relabelled(labelled, keep), [float(m) for m in means[keep]]


def strongest(labels: np.ndarray, confidences: List[float], probability: np.ndarray, weak_find_mass: float) -> Regions:
    """The regions that are not weak side-finds: a region is dropped when its probability mass is
    below `weak_find_mass` x the strongest region's and its mean probability (confidence) is
    below that region's too (0 keeps every region). The threshold's calibration scores the
    regions before this rule: the painted images show each thing once, clearly."""
    if len(confidences) < 2 or weak_find_mass <= 0:
        return labels, confidences
    index = np.arange(1, len(confidences) + 1)
    mass = np.asarray(ndimage.sum_labels(probability, labels, index))
    means = np.asarray(confidences)
    best = int(np.argmax(mass))
    keep = (mass >= weak_find_mass * mass[best]) | (means >= means[best])
    return _relabelled(labels, keep), [c for c, k in zip(confidences, keep) if k]


def vetoed(
    labels: np.ndarray, confidences: List[float], features: Tensor, right_looks: Optional[Tensor], wrong_looks: Tensor
) -> Regions:
    """The regions whose look (mean standardised feature, `features` F x h x w) is nearer a
    painted one (`right_looks` P x F) than a "not this" one (`wrong_looks` K x F), Euclidean."""
    flat = features.reshape(features.shape[0], -1).T  # h*w x F
    keep_labels = np.zeros(len(confidences) + 1, dtype=np.int32)
    kept: List[float] = []
    for number, confidence in enumerate(confidences, start=1):
        look = flat[torch.from_numpy((labels == number).ravel())].mean(0, keepdim=True)
        right = torch.cdist(look, right_looks).min() if right_looks is not None else math.inf
        wrong = torch.cdist(look, wrong_looks).min()
        if wrong >= right:
            kept.append(confidence)
            keep_labels[number] = len(kept)
    return keep_labels[labels], kept
