"""Apply a painted mask beyond its own image: a red stroke often states a rule, not a detail.

"Never the bottom-right corner", "never this watermark": the user paints it once and propagates
it to other training images. Scopes:

- `content` (the default): the painted red *content*, found wherever it sits in each image
  (`app.explain.content_locator`: a per-pixel classifier trained on the strokes, ilastik-style). Each
  image where it is found gets a mask covering the found regions there, with a confidence;
  images where nothing is found get nothing. Red pixels of "not this" corrections
  (`negative_store`) teach it what was wrongly found. For shortcuts that move: a watermark,
  a tag, a stamp, a ruler beside the lesion.
- `all`: every image of the training set (the source's red copied to the same place);
- `class`: every image of the source image's class;
- `similar`: the images where the model's saliency concentrates in the source's red region
  (`app.explain.similar_saliency`).

`plan_propagation` is the preview (which images, how many; nothing is written);
`apply_propagation` writes the masks. Several sources may be propagated at once: an image then
gets the union of the red of every source that selects it (e.g. the corners a round's painted
images showed).

Rules, and why:
- `all`, `class` and `similar` are positional: they copy the painted pixels to the same place,
  right only for a shortcut that really stands still (a border, a fixed corner).
- Masks live in normalised image coordinates: a source mask (stored at its displayed image's
  size) is resized with nearest neighbour to each target's displayed size (the original image,
  long side capped at `datasets.display.DISPLAY_MAX_SIDE`), the size the brush window paints at.
- Only red propagates by default. Green marks *the object* of one image, and objects are not in
  the same place in every image; `include_green=True` copies it as well (red wins where a
  source's red and another's green overlap).
- A hand-painted mask (any mask whose meta `source` is not "propagated") is never touched: those
  images are skipped and listed in the plan. The user's own statement about an image beats a
  rule derived from another image; merging would silently change what they painted.
- A propagated mask records its sources (`meta["from"]`, relpaths separated by newlines) and
  scope. Propagating a source again replaces everything that source propagated before: its
  earlier targets that are no longer selected lose its contribution (and their mask is deleted
  when nothing else contributed), while contributions of other sources are kept. A `content`
  mask is one finding from all its sources together: it is replaced or deleted as a whole.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from torch import nn

from app.errors import UserError
from app.explain.dataset_locator import (
    LOCATE_CHUNK,
    MAX_LOCATOR_SOURCES,
    ProgressCallback,
    fit_locator,
    locate_content,
    unit_images,
)
from app.explain.locator_config import LocatorConfig
from app.explain.mask_provenance import (
    PROPAGATED,
    hand_painted,
    is_hand_painted,
    is_propagated,
    painted_red_sources,
    propagated_sources,
)
from app.explain.options import DEFAULT_SIMILAR_LIFT, DEFAULT_SIMILAR_SHARE, SCOPES
from app.explain.propagation_apply import apply_propagation
from app.explain.propagation_plan import POSITIONAL_SCOPES, PropagationPlan, PropagationResult
from app.explain.similar_saliency import (
    SALIENCY_CHUNK,
    SIMILAR_GROW,
    similar_shares,
    similar_thresholds,
)
from datasets import GREEN, RED, MaskStore

# The names callers import from here, wherever they live now.
__all__ = [
    "DEFAULT_SIMILAR_LIFT",
    "DEFAULT_SIMILAR_SHARE",
    "LOCATE_CHUNK",
    "MAX_LOCATOR_SOURCES",
    "POSITIONAL_SCOPES",
    "PROPAGATED",
    "SALIENCY_CHUNK",
    "SCOPES",
    "SIMILAR_GROW",
    "PropagationPlan",
    "PropagationResult",
    "apply_propagation",
    "fit_locator",
    "hand_painted",
    "is_hand_painted",
    "is_propagated",
    "locate_content",
    "painted_red_sources",
    "plan_propagation",
    "propagate",
    "propagated_sources",
    "similar_shares",
    "unit_images",
]

logger = logging.getLogger(__name__)


def _check_sources(dataset: Any, store: MaskStore, sources: Sequence[str], include_green: bool) -> List[str]:
    """The sources that have something to propagate, in order, without repeats.

    A painted image with only green (an image without the shortcut, its object marked) is left
    out: its green guides training on that image alone. UserError when none is left, or for a
    source that is not painted; DatasetError for one that is not in the data set.
    """
    if not sources:
        raise UserError("choose at least one painted image to propagate from")
    checked, green_only = [], []
    for relpath in dict.fromkeys(sources):  # keeps order, drops repeats
        dataset.index_of(relpath)  # DatasetError when the image is not in the data set
        mask = store.load_array(relpath)
        if mask is None:
            raise UserError(f"{relpath} has no mask in {store.masks_dir}: paint it before propagating it")
        if (mask == RED).any() or (include_green and (mask == GREEN).any()):
            checked.append(relpath)
        else:
            green_only.append(relpath)
    if not checked:
        names = ", ".join(green_only[:3]) + (" ..." if len(green_only) > 3 else "")
        raise UserError(f"no red to propagate: {names} painted green only (green stays with its own image)")
    if green_only:
        logger.info("not propagated (no red): %s", ", ".join(green_only))
    return checked


def _check_similar_options(similar_share: float, similar_lift: Optional[float]) -> None:
    """UserError for a "similar" share outside (0, 1] or a lift that is not a number above 1."""
    if not 0.0 < similar_share <= 1.0:
        raise UserError(f"the similarity threshold must be in (0, 1], got {similar_share}")
    if similar_lift is not None and not (math.isfinite(similar_lift) and similar_lift > 1.0):  # nan planned 0 images
        raise UserError(f"the similarity lift must be above 1 (above the average), got {similar_lift}")


def _candidates(
    dataset: Any,
    scope: str,
    sources: Set[str],
    source_classes: Set[int],
    stores: Tuple[MaskStore, MaskStore],
    excluded: Sequence[str],
) -> Tuple[List[int], List[str]]:
    """(indices of the images the scope examines, relpaths it must skip as hand-painted): every
    image but the sources and the `excluded`, of the sources' classes for "class"; an image with
    a hand-painted mask in the source or the target store is skipped."""
    source_store, target_store = stores
    candidates, skipped = [], []
    dropped = set(excluded)
    for index, relpath in enumerate(dataset.relpaths):
        if relpath in sources or relpath in dropped:
            continue
        if scope == "class" and dataset.targets[index] not in source_classes:
            continue
        if is_hand_painted(target_store, relpath) or (
            source_store is not target_store and is_hand_painted(source_store, relpath)
        ):
            skipped.append(relpath)
            continue
        candidates.append(index)
    return candidates, skipped


def _content_plan(
    dataset: Any,
    sources: List[str],
    candidates: List[int],
    skipped: List[str],
    source_store: MaskStore,
    *,
    negative_store: Optional[MaskStore],
    device: torch.device,
    config: LocatorConfig,
    on_progress: Optional[ProgressCallback],
) -> PropagationPlan:
    """Scope "content": a locator trained on the sources, kept where it finds the content."""
    locator = fit_locator(dataset, sources, source_store, negative_store=negative_store, device=device, config=config)
    targets: Dict[str, Tuple[str, ...]] = {}
    found: Dict[str, Tuple[np.ndarray, Tuple[int, int]]] = {}
    confidence: Dict[str, float] = {}
    for index, finding in zip(candidates, locate_content(locator, dataset, candidates, on_progress)):
        if finding.found:
            relpath = dataset.relpaths[index]
            targets[relpath] = tuple(sources)
            found[relpath] = (np.packbits(finding.mask), finding.mask.shape)
            confidence[relpath] = finding.confidence
    if skipped:  # a hand-painted image is only "skipped" when the content was found there
        hits = locate_content(locator, dataset, [dataset.index_of(r) for r in skipped])
        skipped = [r for r, finding in zip(skipped, hits) if finding.found]
    logger.info(
        "propagation plan (content) from %d sources: found in %d of %d images (threshold %.2f, IoU on the sources %.2f)",
        len(sources),
        len(targets),
        len(candidates),
        locator.threshold,
        locator.source_iou,
    )
    return PropagationPlan(
        "content",
        tuple(sources),
        targets,
        tuple(sorted(skipped)),
        False,
        {},
        found,
        confidence,
        locator.threshold,
        locator.source_iou,
        len(candidates),
    )


def _similar_targets(
    model: nn.Module,
    dataset: Any,
    sources: List[str],
    candidates: List[int],
    skipped: List[str],
    source_store: MaskStore,
    *,
    device: torch.device,
    share: float,
    lift: Optional[float],
    on_progress: Optional[ProgressCallback],
) -> Tuple[Dict[str, Tuple[str, ...]], Dict[str, float], List[str]]:
    """Scope "similar": (target -> its sources, target -> its best share, the hand-painted images
    the rule would have selected)."""
    shares = similar_shares(model, dataset, sources, candidates, source_store, device=device, on_progress=on_progress)
    thresholds = similar_thresholds(shares, share, lift)
    targets: Dict[str, Tuple[str, ...]] = {}
    best: Dict[str, float] = {}
    for column, i in enumerate(candidates):
        chosen = tuple(s for row, s in enumerate(sources) if float(shares[row, column]) >= float(thresholds[row]))
        if chosen:
            targets[dataset.relpaths[i]] = chosen
            best[dataset.relpaths[i]] = float(shares[:, column].max())
    if skipped:  # a hand-painted image is only "skipped" when the rule would have selected it
        skipped_indices = [dataset.index_of(r) for r in skipped]
        skipped_shares = similar_shares(model, dataset, sources, skipped_indices, source_store, device=device)
        skipped = [r for column, r in enumerate(skipped) if bool((skipped_shares[:, column] >= thresholds).any())]
    return targets, best, skipped


def _class_targets(
    dataset: Any, source_class: Dict[str, int], candidates: List[int], skipped: List[str]
) -> Tuple[Dict[str, Tuple[str, ...]], List[str]]:
    """Scope "class": (target -> the sources of its class, the hand-painted images of the
    sources' classes, the only ones the rule would have selected)."""
    targets: Dict[str, Tuple[str, ...]] = {}
    for i in candidates:
        chosen = tuple(s for s in source_class if source_class[s] == dataset.targets[i])
        if chosen:
            targets[dataset.relpaths[i]] = chosen
    wanted = set(source_class.values())
    return targets, [r for r in skipped if dataset.targets[dataset.index_of(r)] in wanted]


def plan_propagation(
    dataset: Any,
    sources: Sequence[str],
    scope: str,
    *,
    source_store: Optional[MaskStore] = None,
    target_store: Optional[MaskStore] = None,
    model: Optional[nn.Module] = None,
    device: torch.device = torch.device("cpu"),
    similar_share: float = DEFAULT_SIMILAR_SHARE,
    similar_lift: Optional[float] = DEFAULT_SIMILAR_LIFT,
    include_green: bool = False,
    negative_store: Optional[MaskStore] = None,
    locator_config: LocatorConfig = LocatorConfig(),
    excluded: Sequence[str] = (),
    on_progress: Optional[ProgressCallback] = None,
) -> PropagationPlan:
    """Which images of `dataset` (ImageFolderData) a propagation would write; nothing is written.

    Scope "content" trains a content locator on the sources (`fit_locator`, with the "not this"
    corrections of `negative_store`) and keeps the images where it finds the content; the
    plan holds each found region and its confidence. `excluded`: relpaths the user dropped
    from the plan (never targets).

    sources: relpaths whose masks (in `source_store`, default `dataset.masks`) are propagated.
    target_store: where the masks will be written (default: the source store); an image with a
    hand-painted mask in either store is skipped. `model` is needed for scope "similar" only
    (one forward and backward per candidate image). Raises UserError on bad input.
    """
    if scope not in SCOPES:
        raise UserError(f"unknown propagation scope '{scope}'; choose one of {', '.join(SCOPES)}")
    source_store = source_store if source_store is not None else dataset.masks
    if source_store is None:
        raise UserError("propagation needs a mask folder with the painted masks")
    target_store = target_store if target_store is not None else source_store
    _check_similar_options(similar_share, similar_lift)
    sources = _check_sources(dataset, source_store, sources, include_green)
    source_class = {relpath: dataset.targets[dataset.index_of(relpath)] for relpath in sources}
    stores = (source_store, target_store)
    candidates, skipped = _candidates(dataset, scope, set(sources), set(source_class.values()), stores, excluded)

    if scope == "content":
        return _content_plan(
            dataset,
            sources,
            candidates,
            skipped,
            source_store,
            negative_store=negative_store,
            device=device,
            config=locator_config,
            on_progress=on_progress,
        )
    shares: Dict[str, float] = {}
    if scope == "all":
        targets = {dataset.relpaths[i]: tuple(sources) for i in candidates}
    elif scope == "class":
        targets, skipped = _class_targets(dataset, source_class, candidates, skipped)
    else:
        if model is None:
            raise UserError("scope 'similar' needs a model (its saliency decides which images are similar)")
        targets, shares, skipped = _similar_targets(
            model,
            dataset,
            sources,
            candidates,
            skipped,
            source_store,
            device=device,
            share=similar_share,
            lift=similar_lift,
            on_progress=on_progress,
        )
    logger.info(
        "propagation plan (%s) from %d sources: %d images, %d hand-painted skipped",
        scope,
        len(sources),
        len(targets),
        len(skipped),
    )
    return PropagationPlan(
        scope, tuple(sources), targets, tuple(sorted(skipped)), include_green, shares, candidates=len(candidates)
    )


def propagate(
    dataset: Any,
    sources: Sequence[str],
    scope: str,
    **options: Any,
) -> PropagationResult:
    """Plan and apply in one call (options as for `plan_propagation` and `apply_propagation`)."""
    apply_keys = {"source_store", "target_store"}
    plan = plan_propagation(dataset, sources, scope, **options)
    return apply_propagation(dataset, plan, **{k: v for k, v in options.items() if k in apply_keys})
