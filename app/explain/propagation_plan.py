"""What a propagation would write (`PropagationPlan`, the preview) and what it wrote (`PropagationResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from datasets.masks import resize_bool

POSITIONAL_SCOPES = ("all", "class", "similar")  # copy the painted pixels to the same place


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
