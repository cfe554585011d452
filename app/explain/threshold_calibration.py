"""The content locator's probability threshold, calibrated on images whose content is known.

The threshold whose finding best matches the known red by F-beta (recall weighs beta^2 times
precision: a missed piece of a shortcut keeps teaching it, a margin too many costs little),
capped at `LocatorConfig.max_threshold` (the balanced loss's boundary, 0.5: the calibration
images flatter strict thresholds that then miss content of unseen looks). docs/content_locator.md
has the measurements behind both choices.
"""

from __future__ import annotations

from typing import Callable, Sequence, Tuple

import numpy as np

Finder = Callable[[np.ndarray, float], np.ndarray]  # (probability h x w, threshold) -> found bool h x w

CANDIDATES = np.linspace(0.1, 0.98, 23)  # the thresholds tried


def f_beta(found: np.ndarray, truth: np.ndarray, beta: float) -> float:
    """F-beta in [0, 1] of a found bool mask against the true one."""
    beta2 = beta**2
    hit = float((found & truth).sum())
    precision = hit / max(1, found.sum())
    recall = hit / max(1, truth.sum())
    return (1 + beta2) * precision * recall / max(1e-9, beta2 * precision + recall)


def iou(found: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two bool masks (1 when both are empty)."""
    union = (found | truth).sum()
    return (found & truth).sum() / union if union else 1.0


def calibrate_threshold(
    probabilities: np.ndarray, truths: Sequence[np.ndarray], find: Finder, recall_beta: float, max_threshold: float
) -> Tuple[float, float]:
    """(threshold, mean IoU of its finding with `truths`).

    probabilities: N x h x w in [0, 1]; truths: N bool h x w; find: the regions kept at a threshold.
    """
    best = (-1.0, 0.5)
    for threshold in CANDIDATES:
        score = float(
            np.mean([f_beta(find(probabilities[i], float(threshold)), truth, recall_beta) for i, truth in enumerate(truths)])
        )
        if score > best[0] + 1e-9:
            best = (score, float(threshold))
    threshold = min(best[1], max_threshold)
    overlap = float(np.mean([iou(find(probabilities[i], threshold), truth) for i, truth in enumerate(truths)]))
    return threshold, overlap
