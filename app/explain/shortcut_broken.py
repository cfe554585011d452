"""Shortcut-broken validation: how the model does when what the user painted red is not there.

The validation split carries the same shortcut as training, so a round that really removes the
shortcut *lowers* plain validation accuracy, and a user deciding by it rejects exactly the rounds
that work. Here the painted content is found in every validation image (the content locator
trained on the hand-painted masks, `app.explain.content_locator`), and evaluation runs on the images with
those regions filled from their own surround (`loss.counterexamples.fill_from_surround`, the same
fill the counterexamples use in training). A model that reads the object keeps its accuracy
there; a model that reads the shortcut loses it.

`BrokenValidation.build` finds the content once (per set of masks); `evaluate` runs per model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from app.explain.dataset_locator import fit_locator, locate_content
from app.explain.locator_config import LocatorConfig
from app.explain.mask_provenance import painted_red_sources
from datasets import MaskStore
from loss.counterexamples import fill_from_surround

logger = logging.getLogger(__name__)

# The filled validation images are the same at every evaluation (fixed regions, fixed donors), so
# they are kept in memory after the first, up to this size: re-decoding and re-filling them took
# 0.55 s of every demo epoch with masks, more than the plain validation (docs/step_cost.md).
BROKEN_CACHE_BYTES = 512 * 2**20


@dataclass
class BrokenValidation:
    """The validation images' found red content, ready to evaluate models on them without it."""

    dataset: Any  # the validation ImageFolderData
    regions: torch.Tensor  # N x h x w bool, the found content per validation image (working resolution)
    found: int  # validation images where the content was found
    batch_size: int = 128
    # (filled images, targets) per batch, on the CPU, once built (None: not yet, or too large)
    _filled: Optional[List[Tuple[torch.Tensor, torch.Tensor]]] = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        train_data: Any,
        val_data: Any,
        *,
        device: torch.device = torch.device("cpu"),
        negative_store: Optional[MaskStore] = None,
        config: LocatorConfig = LocatorConfig(),
    ) -> Optional["BrokenValidation"]:
        """Train the locator on `train_data`'s hand-painted red and find the content in
        `val_data`; None when nothing is painted red (nothing to break)."""
        sources = painted_red_sources(train_data)
        if not sources:
            return None
        locator = fit_locator(train_data, sources, train_data.masks, negative_store=negative_store, device=device, config=config)
        findings = locate_content(locator, val_data, list(range(len(val_data))))
        regions = torch.from_numpy(np.stack([f.mask for f in findings])) if findings else torch.zeros(0, 1, 1, dtype=torch.bool)
        found = sum(f.found for f in findings)
        logger.info("shortcut-broken validation: content found in %d of %d validation images", found, len(val_data))
        return cls(val_data, regions, found)

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, device: torch.device, max_images: Optional[int] = None, per_image: bool = False
    ) -> Dict[str, Any]:
        """{"accuracy", "loss", "found"} (floats) of `model` (eval mode) on the validation images
        with the found content filled from the surround; images without a finding are used as they
        are. `per_image`: also "correct", a bool np.ndarray (n,), True where the model was right
        (what `app.engine.accuracy_change` compares between two models)."""
        was_training = model.training
        model.eval()
        n = len(self.dataset) if max_images is None else min(len(self.dataset), max_images)
        loss_sum, right = 0.0, []
        try:
            seen = 0
            for broken, targets in self._batches(n):
                broken, targets = broken[: n - seen].to(device), targets[: n - seen].to(device)
                seen += targets.shape[0]
                logits = model(broken)
                loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
                right.append((logits.argmax(1) == targets).cpu())
                if seen >= n:
                    break
        finally:
            model.train(was_training)
        correct = torch.cat(right).numpy() if right else np.zeros(0, dtype=bool)
        accuracy = int(correct.sum()) / max(n, 1)
        metrics: Dict[str, Any] = {"accuracy": accuracy, "loss": loss_sum / max(n, 1), "found": float(self.found)}
        if per_image:
            metrics["correct"] = correct
        return metrics

    def _filled_batch(self, start: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Validation images ``start .. start + batch_size`` with their found content filled
        (only the rows with a finding are filled; the donor is the previous image), and targets."""
        indices = list(range(start, min(len(self.dataset), start + self.batch_size)))
        samples = [self.dataset[i] for i in indices]
        images = torch.stack([s.image for s in samples])
        targets = torch.tensor([int(s.target) for s in samples])
        region = self.regions[indices].unsqueeze(1).float()
        region = F.interpolate(region, size=images.shape[-2:], mode="nearest")[:, 0].bool()
        donors = images.roll(1, dims=0) if images.shape[0] > 1 else images
        rows = region.flatten(1).any(dim=1).nonzero().squeeze(1)
        broken = images.clone()
        if rows.numel():
            broken[rows] = fill_from_surround(images[rows], region[rows], donors[rows])
        return broken, targets

    def _batches(self, n: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """The filled batches covering the first ``n`` images: from memory once all have been
        filled, when they fit in ``BROKEN_CACHE_BYTES``."""
        if self._filled is not None:
            yield from self._filled
            return
        first = self._filled_batch(0) if len(self.dataset) else None
        fits = first is not None and first[0].element_size() * first[0][0].numel() * len(self.dataset) <= BROKEN_CACHE_BYTES
        if not fits:
            for start in range(0, n, self.batch_size):
                yield first if start == 0 else self._filled_batch(start)
            return
        batches = [first] + [self._filled_batch(start) for start in range(self.batch_size, len(self.dataset), self.batch_size)]
        self._filled = batches
        yield from batches
