"""Where saliency should not sit, learnt from a pool of images and the annotated masks.

`build_priors` gives the maps the unreasonable score weighs saliency with: the region salient in
every class (from the pool's saliency), each pooled image's located copy of the hand-painted red
(the content locator), and per class the green of its annotated images (the object's place).
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch

from app.explain.dataset_locator import fit_locator, locate_content
from app.explain.locator_config import LocatorConfig
from app.explain.mask_provenance import painted_red_sources
from app.explain.unreasonable_score import ExplanationPriors, class_agnostic_map

logger = logging.getLogger(__name__)

MAX_PRIOR_MASKS = 512  # annotated masks read to build the red/green priors (hand-painted first)


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


def located_red(
    dataset: Any, pool: Sequence[int], device: torch.device = torch.device("cpu"), config: LocatorConfig = LocatorConfig()
) -> Optional[torch.Tensor]:
    """N x S x S in {0, 1}: the hand-painted red content found in each of dataset[pool] (the
    content locator, with `config`), or None when nothing is painted red by hand."""
    sources = painted_red_sources(dataset, MAX_PRIOR_MASKS) if len(pool) else []
    if not sources:
        return None
    locator = fit_locator(dataset, sources, dataset.masks, device=device, config=config)
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
    locator_config: LocatorConfig = LocatorConfig(),
) -> ExplanationPriors:
    """Priors for a pool (its distributions and targets; `pool` its dataset indices) and
    `dataset`'s annotated masks. With `pool`, `forbidden` is each image's own located red
    (the content locator, with `locator_config`)."""
    indices, masks = annotated_masks(dataset)
    forbidden, objects = mask_priors(masks, [dataset.targets[i] for i in indices], len(dataset.classes))
    if pool is not None and forbidden is not None:
        try:
            located = located_red(dataset, pool, device, locator_config)
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
