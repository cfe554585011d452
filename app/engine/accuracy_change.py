"""Did accuracy on a validation set really change, or is it sampling noise? A paired count test.

Two models evaluated on the same n images differ on the images one gets right and the other
wrong: `gained` (wrong before, right after) and `lost` (right before, wrong after). Accuracy
moves by (gained - lost) / n; whether that is more than chance is McNemar's test on the
discordant pairs: under "no change" each discordant image is equally likely to fall either way,
so |gained - lost| - 1 (continuity-corrected) is compared with z x sqrt(gained + lost).

Why it matters here: a validation split of a few hundred images moves by 1-3 points between two
checks of a fine-tuned model by chance alone. A fixed threshold of "2 points worse" ended fine-tune
rounds on noise (seen on the moving demo: rounds stopped after 55 steps with the share of
saliency on red still rising) and called rounds better or worse that were neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z_NOISE = 1.96  # two-sided 5 %: a change smaller than this many standard errors is noise


@dataclass(frozen=True)
class AccuracyChange:
    """The paired difference of two models' per-image correctness on the same images."""

    gained: int  # images wrong before and right after
    lost: int  # images right before and wrong after
    n: int  # images compared

    @classmethod
    def between(cls, before: np.ndarray, after: np.ndarray) -> "AccuracyChange":
        """`before`, `after`: bool arrays of shape (n,), True where that model was right on image i."""
        before, after = np.asarray(before, dtype=bool), np.asarray(after, dtype=bool)
        if before.shape != after.shape or before.ndim != 1:
            raise ValueError(f"per-image correctness must be two 1-D arrays of one length, got {before.shape} and {after.shape}")
        return cls(gained=int((~before & after).sum()), lost=int((before & ~after).sum()), n=int(before.size))

    @property
    def change(self) -> float:
        """Accuracy after minus before, in [-1, 1]."""
        return (self.gained - self.lost) / self.n if self.n else 0.0

    def beyond_noise(self, z: float = Z_NOISE) -> bool:
        """True when the net change is larger than chance at `z` standard errors (McNemar)."""
        discordant = self.gained + self.lost
        return discordant > 0 and abs(self.gained - self.lost) - 1 > z * math.sqrt(discordant)

    def fell(self, by: float, z: float = Z_NOISE) -> bool:
        """Accuracy fell by more than `by` (a fraction, e.g. 0.02) and by more than the noise."""
        return self.change < -by and self.beyond_noise(z)

    def rose(self, by: float, z: float = Z_NOISE) -> bool:
        """Accuracy rose by more than `by` and by more than the noise."""
        return self.change > by and self.beyond_noise(z)

    def text(self) -> str:
        """E.g. "+25 / -16 images": what the numbers above rest on."""
        return f"+{self.gained} / -{self.lost} images"
