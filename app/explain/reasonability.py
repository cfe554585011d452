"""GRADIA's reasonability matrix: images sorted into {accurate, inaccurate} x {reasonable, unreasonable}.

An image with a mask (painted or propagated) is reasonable when the share of its saliency on red
is below `thresholds.red_share` (if the mask has red) and the share on green is at least
`required_green_share` (if it has green): `thresholds.green_lift` times the green area's share
of the image, capped halfway between that share and 1 (a fixed share is below chance for a large
object and out of reach for a small one; docs/reasonability.md). An image without a mask is
judged by the unreasonable score (`app.explain.unreasonable_score`): reasonable when it is below
`thresholds.score`.

No tkinter here: the UI calls `reasonability_matrix` from a background thread, with a model no
other thread is training (a copy, or one loaded from the session checkpoint), because computing
saliency switches the model to eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from app.explain.explanation_metrics import mass_share
from app.explain.explanation_priors import MAX_PRIOR_MASKS, annotated_masks, build_priors, located_red, mask_priors
from app.explain.locator_config import LocatorConfig
from app.explain.pool_saliency import CHUNK, decisive_drops, pool_saliency
from app.explain.unreasonable_score import (
    CAUSE_TEXT,
    COMPONENTS,
    FOCUS_WINDOW,
    MIN_CLASS_IMAGES,
    POSITION_HEURISTICS,
    ExplanationPriors,
    UnreasonableScores,
    class_agnostic_map,
    focus_share,
    saliency_distribution,
    unreasonable_scores,
    weighted_share,
)

# The names callers import from here, wherever they live now.
__all__ = [
    "CAUSE_TEXT",
    "CELLS",
    "CHUNK",
    "COMPONENTS",
    "DEFAULT_POOL",
    "FOCUS_WINDOW",
    "MAX_PRIOR_MASKS",
    "MIN_CLASS_IMAGES",
    "POSITION_HEURISTICS",
    "ExplanationPriors",
    "ReasonabilityMatrix",
    "ReasonabilityThresholds",
    "UnreasonableScores",
    "annotated_masks",
    "build_priors",
    "cell_name",
    "class_agnostic_map",
    "decisive_drops",
    "focus_share",
    "judge_reasonable",
    "located_red",
    "mask_priors",
    "pool_saliency",
    "reasonability_matrix",
    "required_green_share",
    "saliency_distribution",
    "tabulate",
    "unreasonable_scores",
    "weighted_share",
]

DEFAULT_POOL = 512  # images whose saliency is computed, at most (a seeded random subset beyond)
CELLS = ("accurate_reasonable", "accurate_unreasonable", "inaccurate_reasonable", "inaccurate_unreasonable")


@dataclass(frozen=True)
class ReasonabilityThresholds:
    red_share: float = 0.2  # with red in the mask: reasonable only if share of saliency on red < this
    green_lift: float = 2.0  # with green in the mask: reasonable only if share on green >= this x green's area share
    score: float = 0.5  # without a mask: reasonable when the unreasonable score is < this


@dataclass(frozen=True)
class ReasonabilityMatrix:
    """GRADIA's 2 x 2 matrix over a set of images."""

    counts: Dict[str, int]  # cell name (CELLS) -> number of images
    members: Dict[str, Tuple[str, ...]]  # cell name -> relpaths, most unreasonable first
    judged_by_mask: Tuple[str, ...] = ()  # relpaths judged against their own mask (the rest: heuristic)
    thresholds: ReasonabilityThresholds = field(default_factory=ReasonabilityThresholds)

    @property
    def n_images(self) -> int:
        return sum(self.counts.values())

    def count(self, accurate: bool, reasonable: bool) -> int:
        return self.counts[cell_name(accurate, reasonable)]


def cell_name(accurate: bool, reasonable: bool) -> str:
    return f"{'accurate' if accurate else 'inaccurate'}_{'reasonable' if reasonable else 'unreasonable'}"


def required_green_share(masks: torch.Tensor, lift: float) -> torch.Tensor:
    """N shares in [0, 1]: the least share of saliency on green that counts as "on the object".

    `lift` times the green area's share of the image (masks N x H x W in {-1, 0, +1}), capped
    halfway between that area share and 1 so that a green region filling most of the image can
    still be met.
    """
    area = (masks < 0).flatten(1).float().mean(1)
    return torch.minimum(lift * area, area + (1 - area) / 2)


def judge_reasonable(
    saliency: torch.Tensor,
    masks: torch.Tensor,
    has_mask: torch.Tensor,
    heuristic_scores: Optional[torch.Tensor],
    thresholds: ReasonabilityThresholds = ReasonabilityThresholds(),
) -> torch.Tensor:
    """N bool: whether each explanation is reasonable (rules in the module docstring).

    saliency: N x H x W >= 0; masks: N x H x W in {-1, 0, +1}; has_mask: N bool;
    heuristic_scores: N unreasonable scores for the images without a mask (None: those count
    as reasonable, there is no evidence against them).
    """
    red_share, green_share = mass_share(saliency, masks)
    has_red = (masks > 0).flatten(1).any(1)
    has_green = (masks < 0).flatten(1).any(1)
    green_enough = green_share >= required_green_share(masks, thresholds.green_lift)
    by_mask = (~has_red | (red_share < thresholds.red_share)) & (~has_green | green_enough)
    if heuristic_scores is None:
        by_heuristic = torch.ones_like(by_mask)
    else:
        by_heuristic = heuristic_scores < thresholds.score
    marked = has_mask.bool() & (has_red | has_green)
    return torch.where(marked, by_mask, by_heuristic)


def tabulate(
    relpaths: Sequence[str],
    correct: torch.Tensor,
    reasonable: torch.Tensor,
    order_key: Optional[torch.Tensor] = None,
    judged_by_mask: Sequence[str] = (),
    thresholds: ReasonabilityThresholds = ReasonabilityThresholds(),
) -> ReasonabilityMatrix:
    """Count images per cell; `order_key` (N, higher first) orders each cell's members."""
    order = torch.argsort(order_key, descending=True, stable=True).tolist() if order_key is not None else range(len(relpaths))
    members: Dict[str, List[str]] = {name: [] for name in CELLS}
    for row in order:
        members[cell_name(bool(correct[row]), bool(reasonable[row]))].append(relpaths[row])
    return ReasonabilityMatrix(
        counts={name: len(items) for name, items in members.items()},
        members={name: tuple(items) for name, items in members.items()},
        judged_by_mask=tuple(judged_by_mask),
        thresholds=thresholds,
    )


def reasonability_matrix(
    model: nn.Module,
    dataset: Any,
    *,
    device: torch.device = torch.device("cpu"),
    indices: Optional[Sequence[int]] = None,
    pool_size: Optional[int] = DEFAULT_POOL,
    seed: int = 0,
    thresholds: ReasonabilityThresholds = ReasonabilityThresholds(),
    should_stop: Optional[Callable[[], bool]] = None,
    locator_config: LocatorConfig = LocatorConfig(),
) -> Optional[ReasonabilityMatrix]:
    """GRADIA's matrix for `dataset` (an ImageFolderData, with or without a mask store).

    indices: the images to judge (default: all), of which a seeded random `pool_size` at most.
    Images with a mask are judged against it; the others by the unreasonable score, whose
    priors come from this pool and the data set's annotated masks. Returns None when
    `should_stop()` turned True (checked between batches), so a UI can cancel it.
    `locator_config`: the content locator's settings (the painted red found in each image).
    Costs one forward and one backward per judged image.
    """
    chosen = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    if pool_size is not None and len(chosen) > pool_size:
        generator = torch.Generator().manual_seed(seed)
        keep = sorted(torch.randperm(len(chosen), generator=generator)[:pool_size].tolist())
        chosen = [chosen[i] for i in keep]
    computed = pool_saliency(model, dataset, chosen, device, should_stop)
    if computed is None:
        return None
    saliency, targets, predicted = computed
    distributions = saliency_distribution(saliency)
    priors = build_priors(dataset, distributions, targets, pool=chosen, device=device, locator_config=locator_config)
    decisive = decisive_drops(model, dataset, chosen, device, should_stop)
    if decisive is None and should_stop is not None and should_stop():
        return None
    heuristic = unreasonable_scores(distributions, targets, priors, decisive)
    size = (dataset.input_size, dataset.input_size)
    masks = torch.zeros(len(chosen), *size)
    has_mask = torch.zeros(len(chosen), dtype=torch.bool)
    store = getattr(dataset, "masks", None)
    if store is not None:
        for row, index in enumerate(chosen):
            mask = store.load(dataset.relpaths[index], size)
            if mask is not None:
                masks[row], has_mask[row] = mask, True
    reasonable = judge_reasonable(saliency, masks, has_mask, heuristic.score, thresholds)
    relpaths = [dataset.relpaths[i] for i in chosen]
    red_share, _ = mass_share(saliency, masks)
    # Within a cell, the worst explanations first: red share for masked images, else the score.
    order_key = torch.where(has_mask, red_share, heuristic.score)
    judged = [relpaths[row] for row in range(len(chosen)) if bool(has_mask[row])]
    return tabulate(relpaths, predicted == targets, reasonable, order_key, judged, thresholds)
