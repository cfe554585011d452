"""Draw the annotated (masked) training images more often than the others.

When only a few images carry masks, a uniform shuffle puts one or two of them in a batch (and
none in many batches), while the shortcut keeps paying off on every other image. Drawing each
annotated image ``factor`` times as often as an unannotated one keeps the guidance in every
step. Measured on the demo data (small CNN, 6 epochs, RRR penalty alone, masks on 5 % of the
training images, seeds 0-2; decoy-free test accuracy): plain 0.37, masks drawn uniformly 0.455,
factor 5 0.546, factor 10 0.537, factor 20 0.502. Through `main.py train` with all the defaults
(factor 10, counterexamples), seeds 0-4: 0.628 against 0.362 plain (bench/mask_fraction.py).

An epoch stays ``len(dataset)`` draws (the same number of steps as a plain epoch), drawn with
replacement, so unannotated images are seen a little less often than once per epoch. The set of
annotated images is read at the start of every epoch: masks painted during a run count from the
next epoch on. With no annotated image, every image annotated, or ``factor == 1``, it is the
plain shuffle (``RandomSampler``), draw for draw.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import torch
from torch.utils.data import RandomSampler, Sampler


def annotated_share(n_annotated: int, n_images: int, factor: float) -> float:
    """Expected share of draws that are annotated images, in [0, 1]."""
    if n_images <= 0 or n_annotated <= 0:
        return 0.0
    weighted = factor * n_annotated
    return weighted / (weighted + (n_images - n_annotated))


class AnnotatedOversampler(Sampler[int]):
    """Indices into ``dataset`` (which has ``annotated_indices()`` and ``len``), ``len(dataset)``
    per epoch; an annotated image is drawn ``factor`` (>= 1) times as often as another."""

    def __init__(self, dataset: Any, factor: float, generator: Optional[torch.Generator] = None) -> None:
        if not factor >= 1.0:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self.dataset = dataset
        self.factor = float(factor)
        self.generator = generator
        self._uniform = RandomSampler(dataset, generator=generator)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        annotated = self.dataset.annotated_indices() if self.factor > 1.0 else []
        if not annotated or len(annotated) >= n:
            return iter(self._uniform)
        weights = torch.ones(n, dtype=torch.double)
        weights[torch.as_tensor(annotated, dtype=torch.long)] = self.factor
        draws = torch.multinomial(weights, n, replacement=True, generator=self.generator)
        return iter(draws.tolist())
