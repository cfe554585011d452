"""The content locator applied to a data set: trained on its painted masks, run over its images.

`fit_locator` trains an `app.explain.content_locator.ContentLocator` on the red (and green) of
some painted images and on the "not this" corrections; `locate_content` runs it over data set
images in chunks. Propagation, shortcut-broken validation and the reasonability priors all find
painted content this way.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch

from app.explain.content_locator import ContentLocator, FoundContent
from app.explain.locator_config import LocatorConfig
from datasets import MaskStore

LOCATE_CHUNK = 256  # images per locator batch
MAX_LOCATOR_SOURCES = 64  # painted images a locator learns from (spread evenly over the sources given)

ProgressCallback = Callable[[int, int], None]  # (images done, images in all)


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
