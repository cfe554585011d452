"""The "unreasonable first" score: how much of an image's saliency sits where it should not.

Saliency is the vanilla gradient (`app.explain.explanation_metrics.gradient_saliency`, the
quantity the guidance losses act on), turned into a distribution per image (`p[i]`: the map over
its sum), compared at the model's input size where a pixel position means the same place in every
image. The score is the largest of these shares of the saliency mass, each in [0, 1] (a weighted
share `sum_xy p[x, y] * w[x, y]` with a weight map `w` in [0, 1]):

- `forbidden`: on this image's own copy of what was painted red (found by the content locator;
  without a pool, the union of the annotated masks' red: a rule "never here").
- `common`: on a region salient in every class (`class_agnostic_map`); a heuristic, since an
  object that sits in the same place in every class is "common" too.
- `off_object`: 1 - the share on the green of annotated images of the same class.
- `focused`: on one small spot anywhere (`focus_share`): a moving shortcut draws the saliency into
  one small spot; a heuristic too, since a small object is "focused" as well.
- `decisive` (conv models): how much the class probability drops when the top
  `faithfulness.TOP_SHARE` of the Grad-CAM map is hidden. When it is available the position
  heuristics `common` and `focused` are reported but not scored (docs/reasonability.md: they
  ranked shortcut images below random on the shortcut zoo).

The cause named in a reason string is the component that gave the maximum, e.g. "saliency on a
region salient across classes: 62 %".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from app.explain.faithfulness import TOP_SHARE

MIN_CLASS_IMAGES = 2  # a class needs this many images in the pool to count for the common map
COMPONENTS = ("forbidden", "common", "off_object", "focused", "decisive")
POSITION_HEURISTICS = ("common", "focused")  # not scored when `decisive` is available
CAUSE_TEXT = {
    "decisive": f"hiding the top {100 * TOP_SHARE:.0f} % of the Grad-CAM map drops the class by (points)",
    "forbidden": "saliency on what was painted red, found in this image",
    "common": "saliency on a region salient across classes",
    "off_object": "saliency off the object",
    "focused": "saliency focused on one small spot",
}
FOCUS_WINDOW = 0.2  # `focused`: the window's side as a share of the image side


def saliency_distribution(saliency: torch.Tensor) -> torch.Tensor:
    """Each map divided by its sum: N x H x W >= 0 summing to 1 per image (all-zero maps stay 0).

    saliency: N x H x W, non-negative, any scale (negative values and NaN count as 0).
    """
    flat = torch.nan_to_num(saliency.detach().float(), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
    total = flat.flatten(1).sum(1).view(-1, *([1] * (flat.dim() - 1)))
    return torch.where(total > 0, flat / total.clamp_min(1e-30), torch.zeros_like(flat))


def class_agnostic_map(
    distributions: torch.Tensor, targets: torch.Tensor, min_images: int = MIN_CLASS_IMAGES
) -> Optional[torch.Tensor]:
    """Weight map H x W in [0, 1] of the region salient in every class, or None.

    distributions: N x H x W saliency distributions (`saliency_distribution`); targets: N labels.
    `w = min_c m_c * (min_c m_c / max_c m_c)`, scaled to a maximum of 1, with `m_c` the mean
    distribution of the images of class c (classes with fewer than `min_images` images are left
    out). None when fewer than two classes qualify (nothing to call class-agnostic).
    """
    targets = torch.as_tensor(targets).view(-1)
    means = []
    for label in torch.unique(targets).tolist():
        members = targets == label
        if int(members.sum()) >= min_images:
            means.append(distributions[members].mean(0))
    if len(means) < 2:
        return None
    stacked = torch.stack(means)
    low, high = stacked.amin(0), stacked.amax(0)
    agreement = torch.where(high > 0, low / high.clamp_min(1e-30), torch.zeros_like(low))
    weight = low * agreement
    peak = weight.max()
    if not peak > 0:
        return None
    return weight / peak


@dataclass(frozen=True)
class ExplanationPriors:
    """Where saliency should not sit, learnt from the pool and the annotated masks (H x W maps)."""

    common: Optional[torch.Tensor] = None  # H x W in [0, 1]: salient in every class (None: unknown)
    # N x H x W in {0, 1}: the painted red content found in each pooled image (or H x W: the
    # union of the annotated masks' red, when nothing could be located)
    forbidden: Optional[torch.Tensor] = None
    objects: Optional[torch.Tensor] = None  # C x H x W in {0, 1}: green of that class's annotated images
    n_masks: int = 0  # annotated masks the red/green priors were built from


@dataclass(frozen=True)
class UnreasonableScores:
    """Per-image result of `unreasonable_scores` (N images)."""

    score: torch.Tensor  # N in [0, 1]: the largest available component
    components: Dict[str, torch.Tensor]  # name -> N in [0, 1], NaN where unavailable
    cause: Tuple[str, ...]  # per image, the component that gave the score ("" when none applies)

    def reason(self, row: int) -> str:
        """One line for the brush window, e.g. 'saliency off the object: 62 %'."""
        cause = self.cause[row]
        if not cause:
            return "no evidence of an unreasonable explanation"
        if cause == "decisive":
            points = 100 * float(self.score[row])
            return f"hiding the top {100 * TOP_SHARE:.0f} % of the Grad-CAM map drops the class by {points:.0f} points"
        return f"{CAUSE_TEXT[cause]}: {100 * float(self.score[row]):.0f} %"


def weighted_share(distributions: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum_xy p[i, x, y] * w[x, y] (or w[i, x, y]) per image: N in [0, 1] for w in [0, 1]."""
    return (distributions * weight).flatten(1).sum(1).clamp(0, 1)


def focus_share(distributions: torch.Tensor, window: float = FOCUS_WINDOW) -> torch.Tensor:
    """N in [0, 1]: the largest share of each distribution (N x H x W) in any window of
    `window` x the side, above an even spread's share of that window (module docstring)."""
    height, width = distributions.shape[-2:]
    size = (max(1, round(window * height)), max(1, round(window * width)))
    sums = torch.nn.functional.avg_pool2d(distributions[:, None], size, stride=1) * (size[0] * size[1])
    best = sums.flatten(1).amax(1)
    even = size[0] * size[1] / (height * width)
    return ((best - even) / (1 - even)).clamp(0, 1) if even < 1 else torch.zeros_like(best)


def unreasonable_scores(
    distributions: torch.Tensor, targets: torch.Tensor, priors: ExplanationPriors, decisive: Optional[torch.Tensor] = None
) -> UnreasonableScores:
    """The component shares and their maximum (module docstring) for N images.

    distributions: N x H x W saliency distributions; targets: N class indices (for `objects`);
    decisive: N probability drops (`decisive_drops`) or None.
    """
    n = distributions.shape[0]
    nan = torch.full((n,), math.nan)
    components = {name: nan.clone() for name in COMPONENTS}
    if priors.forbidden is not None:
        components["forbidden"] = weighted_share(distributions, priors.forbidden)
    if priors.common is not None:
        components["common"] = weighted_share(distributions, priors.common)
    if priors.objects is not None:
        per_image = priors.objects[torch.as_tensor(targets, dtype=torch.long).view(-1)]
        components["off_object"] = 1.0 - weighted_share(distributions, per_image)
    if n:
        components["focused"] = focus_share(distributions)
    scored = dict(components)
    if decisive is not None:
        components["decisive"] = scored["decisive"] = decisive.float().clamp(0, 1)
        for name in POSITION_HEURISTICS:
            scored[name] = nan.clone()
    stacked = torch.stack([scored[name] for name in COMPONENTS], dim=1)  # N x len(COMPONENTS)
    available = ~torch.isnan(stacked)
    filled = torch.where(available, stacked, torch.full_like(stacked, -1.0))
    best, which = filled.max(1)
    has_any = available.any(1)
    score = torch.where(has_any, best, torch.zeros_like(best))
    cause = tuple(COMPONENTS[int(w)] if bool(h) else "" for w, h in zip(which, has_any))
    return UnreasonableScores(score, components, cause)
