"""How unreasonable a model's explanations are: the "unreasonable first" score and GRADIA's matrix.

Everything here works on vanilla-gradient saliency (`app.explain.explanation_metrics.gradient_saliency`,
the quantity the guidance losses act on), turned into a *distribution* per image: the map divided
by its sum, so that `p[i]` says which share of image i's saliency mass sits on each pixel.
Masks and maps are compared at the model's input size, where every image (and its mask) is
stretched to the same square, so a pixel position means the same place in every image.

The unreasonable score of an image is the largest of three shares of its saliency mass, each
in [0, 1] (a weighted share `sum_xy p[x, y] * w[x, y]` with a weight map `w` in [0, 1]):

- `forbidden`: on this image's own copy of what was painted red: the content locator
  (`app.explain.content_locator`) trained on the hand-painted red finds it in each pooled image, wherever
  it sits there. Only when some hand-painted image has red. (Without a pool to locate in, the
  union of the annotated masks' red pixels stands in: a rule "never here".)
- `common`: on a region salient in every class. The class-agnostic map is the pixel-wise
  minimum over classes of the class-mean saliency distributions, times its own "agreement"
  (minimum over maximum of the class means: 1 where all classes look equally hard, near 0 where
  some class looks much harder than another); scaled so its largest value is 1. A corner swatch,
  a watermark, a border that every class's decision leans on lights up here; an object's parts,
  which differ by class, much less. Needs at least two classes with `MIN_CLASS_IMAGES` images.
  Without masks this is the only evidence, and it is a heuristic: an object that sits in the same
  place in every image of every class is also "common" (see `reasonability_matrix`).
- `off_object`: off the object, i.e. 1 - the share on pixels painted green in annotated images
  of the same class (of any class when the class has none). Only when some annotated image has
  green.
- `focused`: on one small spot, wherever it is: the largest share of the image's saliency inside
  any window of `FOCUS_WINDOW` of the side, above what an even spread would put there
  (`(share - a) / (1 - a)`, a the window's share of the pixels). A moving shortcut (a stamp, a
  tag) draws the saliency into one small spot in a different place in each image, which the
  position-based `common` map cannot see; an object's evidence is spread over the object. A
  heuristic too: a small object is "focused" as well.

- `decisive` (conv models, whose Grad-CAM can be computed): how much the class probability drops
  when the top `faithfulness.TOP_SHARE` of the image's Grad-CAM map is hidden
  (`decisive_drops`): the decision rests on a few pixels. When it is available the two position
  heuristics `common` and `focused` are still reported but no longer scored: on the shortcut zoo
  with 30 % of the images carrying the shortcut, before any paint, they ranked shortcut images
  *below* random (vanilla gradients: 0-6 % of the first 16 carried it, against 32 %), the drop
  above (75-100 %; docs/discovery.md).

The cause named in a reason string is the component that gave the maximum, e.g. "saliency on a
region salient across classes: 62 %".

GRADIA's reasonability matrix sorts images into {accurate, inaccurate} x {reasonable,
unreasonable}. An image with a mask (painted or propagated) is reasonable when the share of its
saliency on red is below `thresholds.red_share` (if the mask has red) and the share on green is
at least `required_green_share` of it (if it has green): `thresholds.green_lift` times the green
area's share of the image, i.e. the saliency concentrates on the object (capped halfway between
the area's share and 1, for objects that fill most of the image). A fixed share would not do:
0.4 was below chance for an object covering half the image, and out of reach for a small one
(measured, corner demo, vanilla gradients on green digits covering 16 % of the image: a model
trained with every truth mask 0.35-0.43 on green, 10th-90th percentile, so 0.4 called 60 % of
its images unreasonable; a plain model 0.21-0.29; as lifts: 2.15-2.68 against 1.35-1.69).
An image without a mask is judged by the
unreasonable score above: reasonable when it is below `thresholds.score`.

No tkinter here: the UI calls `reasonability_matrix` from a background thread, with a model no
other thread is training (a copy, or one loaded from the session checkpoint), because computing
saliency switches the model to eval mode.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from app.explain.explanation_metrics import gradient_saliency, mass_share
from app.explain.faithfulness import TOP_SHARE, hiding_effect
from app.explain.propagation import fit_locator, locate_content, painted_red_sources
from app.explain.saliency import saliency_maps
from models import gradcam_layer

logger = logging.getLogger(__name__)

MIN_CLASS_IMAGES = 2  # a class needs this many images in the pool to count for the common map
MAX_PRIOR_MASKS = 512  # annotated masks read to build the red/green priors (hand-painted first)
DEFAULT_POOL = 512  # images whose saliency is computed, at most (a seeded random subset beyond)
CHUNK = 64  # images per saliency batch

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

CELLS = ("accurate_reasonable", "accurate_unreasonable", "inaccurate_reasonable", "inaccurate_unreasonable")


# ----------------------------------------------------------------------------- maps
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


def mask_priors(
    masks: torch.Tensor, mask_targets: Sequence[int], num_classes: int
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """(forbidden H x W, objects C x H x W) from annotated masks, each None when absent.

    masks: M x H x W in {-1, 0, +1} at the model's input size; mask_targets: M class indices.
    forbidden: 1 where any mask is red. objects[c]: 1 where any mask of class c is green; a class
    without green masks gets the union of all classes' green (the object's usual place).
    """
    if masks.shape[0] == 0:
        return None, None
    red = (masks > 0).any(0)
    forbidden = red.float() if bool(red.any()) else None
    green = masks < 0
    if not bool(green.any()):
        return forbidden, None
    targets = torch.as_tensor(list(mask_targets), dtype=torch.long)
    any_green = green.any(0)
    objects = torch.zeros(num_classes, *masks.shape[1:])
    for label in range(num_classes):
        own = green[targets == label]
        union = own.any(0) if own.shape[0] else torch.zeros_like(any_green)
        objects[label] = (union if bool(union.any()) else any_green).float()
    return forbidden, objects


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


# ------------------------------------------------------------------- from a data set
def pool_saliency(
    model: nn.Module, dataset: Any, indices: Sequence[int], device: torch.device, should_stop: Optional[Callable[[], bool]] = None
) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(saliency N x H x W >= 0, targets N, predicted N) of dataset[indices], or None if stopped.

    Saliency is the vanilla gradient of the true class (the map the brush window shows).
    """
    maps, targets, predicted = [], [], []
    for start in range(0, len(indices), CHUNK):
        if should_stop is not None and should_stop():
            return None
        chunk = [dataset[i] for i in indices[start : start + CHUNK]]
        images = torch.stack([s[0] for s in chunk]).to(device)
        labels = torch.tensor([int(s[1]) for s in chunk], dtype=torch.long, device=device)
        maps.append(gradient_saliency(model, images, labels))
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                predicted.append(model(images).argmax(1).cpu())
        finally:
            model.train(was_training)
        targets.append(labels.cpu())
    if not maps:
        return (
            torch.zeros(0, dataset.input_size, dataset.input_size),
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0, dtype=torch.long),
        )
    return torch.cat(maps), torch.cat(targets), torch.cat(predicted)


def decisive_drops(
    model: nn.Module, dataset: Any, indices: Sequence[int], device: torch.device, should_stop: Optional[Callable[[], bool]] = None
) -> Optional[torch.Tensor]:
    """N drops in [-1, 1] of the class probability when the top of each image's Grad-CAM map is
    hidden (`app.explain.faithfulness`), or None when the model has no convolution (no Grad-CAM)
    or `should_stop()` turned True. One backward and three forwards per image."""
    try:
        gradcam_layer(model)
    except ValueError:
        return None
    drops = []
    for start in range(0, len(indices), CHUNK):
        if should_stop is not None and should_stop():
            return None
        chunk = [dataset[i] for i in indices[start : start + CHUNK]]
        images = torch.stack([s[0] for s in chunk]).to(device)
        labels = torch.tensor([int(s[1]) for s in chunk], dtype=torch.long, device=device)
        maps = saliency_maps(model, images, labels, "gradcam", normalise=False)
        drops.append(hiding_effect(model, images, labels, maps).drop)
    return torch.cat(drops) if drops else torch.zeros(0)


def annotated_masks(dataset: Any, limit: int = MAX_PRIOR_MASKS) -> Tuple[List[int], torch.Tensor]:
    """(indices, masks M x S x S) of up to `limit` annotated images of `dataset`, hand-painted first.

    Propagated masks (meta source "propagated") repeat their source, so they come last.
    """
    store = getattr(dataset, "masks", None)
    if store is None:
        return [], torch.zeros(0, dataset.input_size, dataset.input_size)
    painted, propagated = [], []
    for relpath in store.annotated():
        try:
            index = dataset.index_of(relpath)
        except ValueError:
            continue  # a mask of an image this data set does not hold
        (propagated if store.meta(relpath).get("source") == "propagated" else painted).append(index)
    chosen = (painted + propagated)[:limit]
    size = (dataset.input_size, dataset.input_size)
    masks = [store.load(dataset.relpaths[i], size) for i in chosen]
    kept = [(i, m) for i, m in zip(chosen, masks) if m is not None]
    if not kept:
        return [], torch.zeros(0, *size)
    return [i for i, _ in kept], torch.stack([m for _, m in kept])


def located_red(dataset: Any, pool: Sequence[int], device: torch.device = torch.device("cpu")) -> Optional[torch.Tensor]:
    """N x S x S in {0, 1}: the hand-painted red content found in each of dataset[pool] (the
    content locator), or None when nothing is painted red by hand."""
    sources = painted_red_sources(dataset, MAX_PRIOR_MASKS) if len(pool) else []
    if not sources:
        return None
    locator = fit_locator(dataset, sources, dataset.masks, device=device)
    size = (dataset.input_size, dataset.input_size)
    found = locate_content(locator, dataset, list(pool))
    maps = [torch.from_numpy(np.asarray(f.mask, dtype=np.float32)) for f in found]
    stacked = torch.stack(maps)[:, None]
    return torch.nn.functional.interpolate(stacked, size=size, mode="nearest")[:, 0]


def build_priors(
    dataset: Any,
    distributions: torch.Tensor,
    targets: torch.Tensor,
    pool: Optional[Sequence[int]] = None,
    device: torch.device = torch.device("cpu"),
) -> ExplanationPriors:
    """Priors for a pool (its distributions and targets; `pool` its dataset indices) and
    `dataset`'s annotated masks. With `pool`, `forbidden` is each image's own located red."""
    indices, masks = annotated_masks(dataset)
    forbidden, objects = mask_priors(masks, [dataset.targets[i] for i in indices], len(dataset.classes))
    if pool is not None and forbidden is not None:
        try:
            located = located_red(dataset, pool, device)
        except Exception:  # noqa: BLE001 -- a missing prior must not cost the round
            logger.exception("red content not located; using the painted positions")
            located = None
        if located is not None:
            forbidden = located
    return ExplanationPriors(
        common=class_agnostic_map(distributions, targets),
        forbidden=forbidden,
        objects=objects,
        n_masks=len(indices),
    )


# ----------------------------------------------------------------- the matrix (GRADIA)
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
) -> Optional[ReasonabilityMatrix]:
    """GRADIA's matrix for `dataset` (an ImageFolderData, with or without a mask store).

    indices: the images to judge (default: all), of which a seeded random `pool_size` at most.
    Images with a mask are judged against it; the others by the unreasonable score, whose
    priors come from this pool and the data set's annotated masks. Returns None when
    `should_stop()` turned True (checked between batches), so a UI can cancel it.
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
    priors = build_priors(dataset, distributions, targets, pool=chosen, device=device)
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
