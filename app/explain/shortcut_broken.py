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
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from app.explain.content_locator import LocatorConfig
from app.explain.propagation import fit_locator, locate_content, painted_red_sources
from datasets import MaskStore
from loss.counterexamples import fill_from_surround

logger = logging.getLogger(__name__)


@dataclass
class BrokenValidation:
    """The validation images' found red content, ready to evaluate models on them without it."""

    dataset: Any  # the validation ImageFolderData
    regions: torch.Tensor  # N x h x w bool, the found content per validation image (working resolution)
    found: int  # validation images where the content was found
    batch_size: int = 128

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
            for start in range(0, n, self.batch_size):
                indices = list(range(start, min(n, start + self.batch_size)))
                samples = [self.dataset[i] for i in indices]
                images = torch.stack([s.image for s in samples]).to(device)
                targets = torch.tensor([int(s.target) for s in samples], device=device)
                region = self.regions[indices].unsqueeze(1).float()
                region = F.interpolate(region, size=images.shape[-2:], mode="nearest")[:, 0].bool().to(device)
                donors = images.roll(1, dims=0) if images.shape[0] > 1 else images
                broken = fill_from_surround(images, region, donors)
                logits = model(broken)
                loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
                right.append((logits.argmax(1) == targets).cpu())
        finally:
            model.train(was_training)
        correct = torch.cat(right).numpy() if right else np.zeros(0, dtype=bool)
        accuracy = int(correct.sum()) / max(n, 1)
        metrics: Dict[str, Any] = {"accuracy": accuracy, "loss": loss_sum / max(n, 1), "found": float(self.found)}
        if per_image:
            metrics["correct"] = correct
        return metrics
