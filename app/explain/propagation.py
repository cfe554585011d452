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
  (grown by a pixel or two at the model's input size): the share of the image's vanilla-gradient
  saliency mass (true class) inside it is at least `similar_share`, or at least `similar_lift`
  times the mean share of that region over all candidate images (the model looks there more
  than it usually does). The relative rule matters on noisy images, where gradients spread over
  the whole picture: on the demo data a model that follows the swatch puts about 9 % of its
  saliency in the swatch's corner region and about 7 % in an empty corner, far below any
  absolute threshold, yet clearly apart.

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
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from app.errors import UserError
from app.explain.content_locator import ContentLocator, FoundContent, LocatorConfig
from app.explain.explanation_metrics import gradient_saliency
from app.explain.options import DEFAULT_SIMILAR_LIFT, DEFAULT_SIMILAR_SHARE, SCOPES
from datasets import GREEN, RED, MaskStore
from datasets.display import DISPLAY_MAX_SIDE, display_size
from datasets.masks import resize_bool, resize_mask

logger = logging.getLogger(__name__)

PROPAGATED = "propagated"  # meta["source"] of a propagated mask
POSITIONAL_SCOPES = ("all", "class", "similar")  # copy the painted pixels to the same place
LOCATE_CHUNK = 256  # images per locator batch
MAX_LOCATOR_SOURCES = 64  # painted images a locator learns from (spread evenly over the sources given)
SIMILAR_GROW = 1 / 32  # the red region is grown by this fraction of the input side (1 px at 32)
SALIENCY_CHUNK = 64  # images per saliency batch

ProgressCallback = Callable[[int, int], None]  # (images done, images in all)


@dataclass(frozen=True)
class PropagationPlan:
    """What a propagation would write: the preview shown before applying it."""

    scope: str
    sources: Tuple[str, ...]  # relpaths of the source images
    targets: Mapping[str, Tuple[str, ...]]  # target relpath -> the sources whose red it gets
    skipped_hand_painted: Tuple[str, ...] = ()  # selected, but their own painted mask stays
    include_green: bool = False
    shares: Mapping[str, float] = field(default_factory=dict)  # "similar": target -> best share
    # "content": target -> the found regions (bool h x w at the locator's working resolution,
    # packed with np.packbits; `found_mask` unpacks) and its confidence in [0, 1]
    found: Mapping[str, Tuple[np.ndarray, Tuple[int, int]]] = field(default_factory=dict)
    confidence: Mapping[str, float] = field(default_factory=dict)
    threshold: float = 0.0  # "content": the locator's calibrated probability threshold
    source_iou: float = 0.0  # "content": IoU of its finding with the sources' own red
    candidates: int = 0  # images examined

    def found_mask(self, relpath: str, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """bool mask of the content found in `relpath` ("content" only), at `size` = (H, W)
        (nearest neighbour) or at the working resolution."""
        packed, shape = self.found[relpath]
        mask = np.unpackbits(packed, count=shape[0] * shape[1]).reshape(shape).astype(bool)
        return mask if size is None else resize_bool(mask, size)

    def ranked(self) -> List[str]:
        """Targets best first ("content": by confidence; else by share, else by name)."""
        score = self.confidence or self.shares
        return sorted(self.targets, key=lambda r: (-score.get(r, 0.0), r))

    def without(self, excluded: Sequence[str]) -> "PropagationPlan":
        """This plan less the `excluded` targets (the user dropped them after the preview): what
        Apply writes of a reviewed plan, so it is applied as shown, with no second search."""
        dropped = set(excluded)
        if not dropped.intersection(self.targets):
            return self
        return replace(
            self,
            targets={r: s for r, s in self.targets.items() if r not in dropped},
            shares={r: v for r, v in self.shares.items() if r not in dropped},
            found={r: v for r, v in self.found.items() if r not in dropped},
            confidence={r: v for r, v in self.confidence.items() if r not in dropped},
        )

    @property
    def count(self) -> int:
        """How many images would get a propagated mask."""
        return len(self.targets)

    @property
    def relpaths(self) -> List[str]:
        """The target images, sorted."""
        return sorted(self.targets)


@dataclass(frozen=True)
class PropagationResult:
    written: int  # masks written (new or replaced)
    removed: int  # earlier propagated masks deleted because their sources no longer select them
    plan: PropagationPlan


# ------------------------------------------------------------------------- helpers
def is_propagated(store: MaskStore, relpath: str) -> bool:
    """Whether `relpath` has a mask in `store` and it was written by propagation."""
    return store.has(relpath) and store.meta(relpath).get("source") == PROPAGATED


def is_hand_painted(store: Optional[MaskStore], relpath: str) -> bool:
    """Whether `relpath` has a mask in `store` that a person painted (not propagated)."""
    return store is not None and store.has(relpath) and store.meta(relpath).get("source") != PROPAGATED


def hand_painted(store: MaskStore) -> List[str]:
    """Relpaths of the hand-painted masks in `store`, sorted (what a feedback round should skip)."""
    return [relpath for relpath in store.annotated() if store.meta(relpath).get("source") != PROPAGATED]


def painted_red_sources(dataset: Any, limit: Optional[int] = None) -> List[str]:
    """Relpaths of `dataset`'s images painted red by hand (its mask store), at most `limit`:
    what a content locator learns from. Empty without a mask store."""
    store = getattr(dataset, "masks", None)
    if store is None:
        return []
    sources = []
    for relpath in hand_painted(store):
        mask = store.load_array(relpath)
        if mask is None or not bool((mask == RED).any()):
            continue
        try:
            dataset.index_of(relpath)
        except ValueError:
            continue  # a mask of an image this data set does not hold
        sources.append(relpath)
        if limit is not None and len(sources) >= limit:
            break
    return sources


def propagated_sources(store: MaskStore, relpath: str) -> Tuple[str, ...]:
    """The sources recorded in a propagated mask's meta (empty for other masks)."""
    meta = store.meta(relpath)
    if meta.get("source") != PROPAGATED:
        return ()
    return tuple(s for s in meta.get("from", "").split("\n") if s)


def _red_region(mask: torch.Tensor, grow: int) -> torch.Tensor:
    """bool H x W: the red pixels of `mask` (H x W) grown by `grow` pixels (a square brush)."""
    red = (mask > 0).float()[None, None]
    if grow > 0:
        red = F.max_pool2d(red, kernel_size=2 * grow + 1, stride=1, padding=grow)
    return red[0, 0] > 0


def unit_images(dataset: Any, indices: Sequence[int]) -> torch.Tensor:
    """N x 3 x S x S in [0, 1]: dataset images at the model's input size, unnormalised."""
    if not len(indices):
        return torch.zeros(0, 3, dataset.input_size, dataset.input_size)
    images = torch.stack([dataset[i].image for i in indices])
    mean = torch.tensor(dataset.mean).view(1, 3, 1, 1)
    std = torch.tensor(dataset.std).view(1, 3, 1, 1)
    return (images * std + mean).clamp(0, 1)


def fit_locator(
    dataset: Any,
    sources: Sequence[str],
    store: MaskStore,
    *,
    negative_store: Optional[MaskStore] = None,
    device: torch.device = torch.device("cpu"),
    config: LocatorConfig = LocatorConfig(),
) -> ContentLocator:
    """A content locator trained on the red (and green) of `sources`' masks in `store`.

    negative_store: "not this" corrections, a mask store whose red pixels (on images of
    `dataset`) were wrongly found. Raises UserError when no source has red.
    """
    size = (dataset.input_size, dataset.input_size)
    if len(sources) > MAX_LOCATOR_SOURCES:  # a few dozen painted images say all there is to say
        step = len(sources) / MAX_LOCATOR_SOURCES
        sources = [sources[int(i * step)] for i in range(MAX_LOCATOR_SOURCES)]
    indices = [dataset.index_of(r) for r in sources]
    masks = [store.load(r, size) for r in sources]
    red = [(m > 0).numpy() if m is not None else np.zeros(size, bool) for m in masks]
    green = [(m < 0).numpy() if m is not None else None for m in masks]
    negatives = []
    if negative_store is not None:
        for relpath in negative_store.annotated():
            try:
                index = dataset.index_of(relpath)
            except ValueError:
                continue  # a correction on an image that left the data set
            mask = negative_store.load(relpath, size)
            if mask is not None and bool((mask > 0).any()):
                negatives.append((unit_images(dataset, [index])[0], (mask > 0).numpy()))
    return ContentLocator(config, device).fit(unit_images(dataset, indices), red, green, negatives)


def locate_content(
    locator: ContentLocator,
    dataset: Any,
    indices: Sequence[int],
    on_progress: Optional[ProgressCallback] = None,
) -> List[FoundContent]:
    """The locator's finding in each of dataset[indices], in chunks of LOCATE_CHUNK images."""
    found: List[FoundContent] = []
    for start in range(0, len(indices), LOCATE_CHUNK):
        chunk = list(indices[start : start + LOCATE_CHUNK])
        found.extend(locator.locate(unit_images(dataset, chunk)))
        if on_progress is not None:
            on_progress(min(start + LOCATE_CHUNK, len(indices)), len(indices))
    return found


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


def similar_shares(
    model: nn.Module,
    dataset: Any,
    sources: Sequence[str],
    candidates: Sequence[int],
    store: MaskStore,
    *,
    device: torch.device,
    on_progress: Optional[ProgressCallback] = None,
) -> torch.Tensor:
    """S x N: share of each candidate's saliency inside each source's (grown) red region, [0, 1].

    candidates: dataset indices. Saliency: vanilla gradient of the true class at the input size.
    """
    size = (dataset.input_size, dataset.input_size)
    grow = max(1, round(dataset.input_size * SIMILAR_GROW))
    regions = []
    for relpath in sources:
        mask = store.load(relpath, size)
        regions.append(_red_region(mask, grow) if mask is not None else torch.zeros(size, dtype=torch.bool))
    region_stack = torch.stack(regions).float().flatten(1)  # S x HW
    shares = []
    for start in range(0, len(candidates), SALIENCY_CHUNK):
        chunk = [dataset[i] for i in candidates[start : start + SALIENCY_CHUNK]]
        images = torch.stack([s[0] for s in chunk]).to(device)
        targets = torch.tensor([int(s[1]) for s in chunk], dtype=torch.long, device=device)
        saliency = gradient_saliency(model, images, targets).flatten(1).clamp_min(0)  # n x HW
        total = saliency.sum(1, keepdim=True)
        inside = region_stack @ saliency.T  # S x n
        shares.append(torch.where(total.T > 0, inside / total.T.clamp_min(1e-30), torch.zeros_like(inside)))
        if on_progress is not None:
            on_progress(min(start + SALIENCY_CHUNK, len(candidates)), len(candidates))
    if not shares:
        return torch.zeros(len(sources), 0)
    return torch.cat(shares, dim=1)


# ------------------------------------------------------------------------- preview
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
    if not 0.0 < similar_share <= 1.0:
        raise UserError(f"the similarity threshold must be in (0, 1], got {similar_share}")
    if similar_lift is not None and not (math.isfinite(similar_lift) and similar_lift > 1.0):  # nan planned 0 images
        raise UserError(f"the similarity lift must be above 1 (above the average), got {similar_lift}")
    sources = _check_sources(dataset, source_store, sources, include_green)
    source_set = set(sources)
    source_class = {relpath: dataset.targets[dataset.index_of(relpath)] for relpath in sources}

    candidates, skipped = [], []
    dropped = set(excluded)
    for index, relpath in enumerate(dataset.relpaths):
        if relpath in source_set or relpath in dropped:
            continue
        if scope == "class" and dataset.targets[index] not in source_class.values():
            continue
        if is_hand_painted(target_store, relpath) or (
            source_store is not target_store and is_hand_painted(source_store, relpath)
        ):
            skipped.append(relpath)
            continue
        candidates.append(index)

    targets: Dict[str, Tuple[str, ...]] = {}
    shares_out: Dict[str, float] = {}
    if scope == "content":
        locator = fit_locator(dataset, sources, source_store, negative_store=negative_store, device=device, config=locator_config)
        found: Dict[str, Tuple[np.ndarray, Tuple[int, int]]] = {}
        confidence: Dict[str, float] = {}
        for index, finding in zip(candidates, locate_content(locator, dataset, candidates, on_progress)):
            if finding.found:
                relpath = dataset.relpaths[index]
                targets[relpath] = tuple(sources)
                found[relpath] = (np.packbits(finding.mask), finding.mask.shape)
                confidence[relpath] = finding.confidence
        if skipped:  # a hand-painted image is only "skipped" when the content was found there
            skipped_indices = [dataset.index_of(r) for r in skipped]
            hits = locate_content(locator, dataset, skipped_indices)
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
            scope,
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
    if scope == "all":
        targets = {dataset.relpaths[i]: tuple(sources) for i in candidates}
    elif scope == "class":
        for i in candidates:
            chosen = tuple(s for s in sources if source_class[s] == dataset.targets[i])
            if chosen:
                targets[dataset.relpaths[i]] = chosen
    else:
        if model is None:
            raise UserError("scope 'similar' needs a model (its saliency decides which images are similar)")
        shares = similar_shares(model, dataset, sources, candidates, source_store, device=device, on_progress=on_progress)
        thresholds = torch.full((len(sources),), similar_share)
        if similar_lift is not None and shares.shape[1]:
            mean = shares.mean(1)  # a region nobody looks at (mean 0) selects nothing by the lift
            thresholds = torch.minimum(thresholds, torch.where(mean > 0, similar_lift * mean, torch.full_like(mean, math.inf)))
        for column, i in enumerate(candidates):
            chosen = tuple(s for row, s in enumerate(sources) if float(shares[row, column]) >= float(thresholds[row]))
            if chosen:
                targets[dataset.relpaths[i]] = chosen
                shares_out[dataset.relpaths[i]] = float(shares[:, column].max())
        # a hand-painted image is only "skipped" when the rule would have selected it
        if skipped:
            skipped_indices = [dataset.index_of(r) for r in skipped]
            skipped_shares = similar_shares(model, dataset, sources, skipped_indices, source_store, device=device)
            skipped = [r for column, r in enumerate(skipped) if bool((skipped_shares[:, column] >= thresholds).any())]
    if scope == "class":
        wanted = set(source_class.values())
        skipped = [r for r in skipped if dataset.targets[dataset.index_of(r)] in wanted]
    logger.info(
        "propagation plan (%s) from %d sources: %d images, %d hand-painted skipped",
        scope,
        len(sources),
        len(targets),
        len(skipped),
    )
    return PropagationPlan(
        scope, tuple(sources), targets, tuple(sorted(skipped)), include_green, shares_out, candidates=len(candidates)
    )


# --------------------------------------------------------------------------- apply
def _compose(
    dataset: Any, relpath: str, sources: Sequence[str], store: MaskStore, include_green: bool, cache: Dict[str, np.ndarray]
) -> np.ndarray:
    """The propagated mask of `relpath` (np.int8 at its display size) from `sources`' masks."""

    size = display_size(dataset.image_path(dataset.index_of(relpath)), DISPLAY_MAX_SIDE)
    red = np.zeros(size, dtype=bool)
    green = np.zeros(size, dtype=bool)
    for source in sources:
        if source not in cache:
            loaded = store.load_array(source)
            cache[source] = loaded if loaded is not None else np.zeros((1, 1), dtype=np.int8)
        resized = resize_mask(cache[source], size)
        red |= resized == RED
        if include_green:
            green |= resized == GREEN
    mask = np.zeros(size, dtype=np.int8)
    mask[green] = GREEN
    mask[red] = RED
    return mask


def apply_propagation(
    dataset: Any,
    plan: PropagationPlan,
    *,
    source_store: Optional[MaskStore] = None,
    target_store: Optional[MaskStore] = None,
    on_progress: Optional[ProgressCallback] = None,
) -> PropagationResult:
    """Write the plan's masks into `target_store` (default: the source store, `dataset.masks`).

    Each target's mask is the union of the red (and green with `plan.include_green`) of its
    sources in this plan and of the sources of its earlier propagated mask that are not
    propagated again now. Earlier propagated masks that name a source of this plan but are no
    longer targets lose that source (deleted when none is left). Hand-painted masks are never
    written or deleted. Returns how many masks were written and removed.
    """

    source_store = source_store if source_store is not None else dataset.masks
    if source_store is None:
        raise UserError("propagation needs a mask folder with the painted masks")
    target_store = target_store if target_store is not None else source_store
    current = set(plan.sources)
    cache: Dict[str, np.ndarray] = {}

    # Earlier propagated masks in the target store, with their recorded sources. A positional
    # mask is a union of per-source copies; a content mask is one finding of all its sources.
    earlier: Dict[str, Tuple[str, ...]] = {}
    earlier_content = set()
    for relpath in target_store.annotated():
        recorded = propagated_sources(target_store, relpath)
        if recorded:
            earlier[relpath] = recorded
            if target_store.meta(relpath).get("scope") == "content":
                earlier_content.add(relpath)

    def kept_sources(relpath: str) -> List[str]:
        """Earlier sources of `relpath` not propagated again now, whose mask still exists
        (positional masks only: a content finding is not split by source)."""
        if relpath in earlier_content:
            return []
        return [s for s in earlier.get(relpath, ()) if s not in current and source_store.has(s)]

    written = removed = 0
    total = len(plan.targets)
    for done, (relpath, sources) in enumerate(sorted(plan.targets.items()), start=1):
        if is_hand_painted(target_store, relpath):
            continue  # painted by hand since the preview: the user's mask wins
        if plan.scope == "content":
            contributing = list(sources)
            size = display_size(dataset.image_path(dataset.index_of(relpath)), DISPLAY_MAX_SIDE)
            mask = np.where(plan.found_mask(relpath, size), np.int8(RED), np.int8(0)).astype(np.int8)
            meta = {
                "source": PROPAGATED,
                "from": "\n".join(contributing),
                "scope": plan.scope,
                "confidence": f"{plan.confidence.get(relpath, 0.0):.3f}",
            }
        else:
            contributing = list(dict.fromkeys(list(sources) + kept_sources(relpath)))
            mask = _compose(dataset, relpath, contributing, source_store, plan.include_green, cache)
            meta = {"source": PROPAGATED, "from": "\n".join(contributing), "scope": plan.scope}
        target_store.save(relpath, mask, meta=meta)
        written += 1
        if on_progress is not None:
            on_progress(done, total)

    # Re-propagation: a source's old targets that it no longer selects lose its contribution.
    for relpath, recorded in earlier.items():
        if relpath in plan.targets or not current.intersection(recorded):
            continue
        remaining = kept_sources(relpath)
        if not remaining:
            target_store.delete(relpath)
            removed += 1
            continue
        try:
            dataset.index_of(relpath)
        except ValueError:
            continue
        mask = _compose(dataset, relpath, remaining, source_store, plan.include_green, cache)
        meta = dict(target_store.meta(relpath), **{"from": "\n".join(remaining)})
        target_store.save(relpath, mask, meta=meta)
        written += 1
    logger.info("propagation (%s): wrote %d masks, removed %d", plan.scope, written, removed)
    return PropagationResult(written, removed, plan)


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
