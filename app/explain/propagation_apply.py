"""Write a propagation plan: each target's mask from its sources, earlier propagated masks updated.

A positional mask (scopes all, class, similar) is the union of its sources' red (and green with
`include_green`) resized to the target's display size; a content mask is the plan's finding
there. Propagating a source again replaces what it wrote before; hand-painted masks are never
written or deleted (`app.explain.propagation` states the rules).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from app.errors import UserError
from app.explain.dataset_locator import ProgressCallback
from app.explain.mask_provenance import (
    PROPAGATED,
    delete_unless_hand_painted,
    is_hand_painted,
    propagated_sources,
    save_unless_hand_painted,
)
from app.explain.propagation_plan import PropagationPlan, PropagationResult
from datasets import GREEN, RED, MaskStore
from datasets.display import DISPLAY_MAX_SIDE, display_size
from datasets.masks import resize_mask

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _EarlierMasks:
    """The propagated masks already in the target store, with their recorded sources. A
    positional mask is a union of per-source copies; a content mask is one finding of all its
    sources, never split by source."""

    sources: Dict[str, Tuple[str, ...]]  # relpath -> its recorded sources
    content: Set[str]  # the relpaths whose mask is a "content" finding

    @classmethod
    def scan(cls, store: MaskStore) -> "_EarlierMasks":
        sources: Dict[str, Tuple[str, ...]] = {}
        content = set()
        for relpath in store.annotated():
            recorded = propagated_sources(store, relpath)
            if recorded:
                sources[relpath] = recorded
                if store.meta(relpath).get("scope") == "content":
                    content.add(relpath)
        return cls(sources, content)

    def kept_sources(self, relpath: str, current: Set[str], source_store: MaskStore) -> List[str]:
        """Earlier sources of `relpath` not propagated again now (`current`), whose mask still
        exists (positional masks only)."""
        if relpath in self.content:
            return []
        return [s for s in self.sources.get(relpath, ()) if s not in current and source_store.has(s)]


def _content_mask(dataset: Any, plan: PropagationPlan, relpath: str, sources: Sequence[str]) -> Tuple[np.ndarray, Dict[str, str]]:
    """(np.int8 mask at `relpath`'s display size: red where the plan found the content, its meta)."""
    size = display_size(dataset.image_path(dataset.index_of(relpath)), DISPLAY_MAX_SIDE)
    mask = np.where(plan.found_mask(relpath, size), np.int8(RED), np.int8(0)).astype(np.int8)
    meta = {
        "source": PROPAGATED,
        "from": "\n".join(sources),
        "scope": plan.scope,
        "confidence": f"{plan.confidence.get(relpath, 0.0):.3f}",
    }
    return mask, meta


def _withdraw(
    dataset: Any,
    plan: PropagationPlan,
    earlier: _EarlierMasks,
    stores: Tuple[MaskStore, MaskStore],
    cache: Dict[str, np.ndarray],
) -> Tuple[int, int]:
    """Re-propagation: a source's old targets that it no longer selects lose its contribution,
    and their mask is deleted when nothing else contributed. (masks rewritten, masks deleted)"""
    source_store, target_store = stores
    current = set(plan.sources)
    written = removed = 0
    for relpath, recorded in earlier.sources.items():
        if relpath in plan.targets or not current.intersection(recorded):
            continue
        remaining = earlier.kept_sources(relpath, current, source_store)
        if not remaining:
            # painted by hand since the scan: the user's mask stays
            removed += delete_unless_hand_painted(target_store, relpath)
            continue
        try:
            dataset.index_of(relpath)
        except ValueError:
            continue
        mask = _compose(dataset, relpath, remaining, source_store, plan.include_green, cache)
        meta = dict(target_store.meta(relpath), source=PROPAGATED, **{"from": "\n".join(remaining)})
        written += save_unless_hand_painted(target_store, relpath, mask, meta)
    return written, removed


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
    earlier = _EarlierMasks.scan(target_store)
    written = 0
    total = len(plan.targets)
    for done, (relpath, sources) in enumerate(sorted(plan.targets.items()), start=1):
        if is_hand_painted(target_store, relpath):
            continue  # painted by hand since the preview: the user's mask wins (no mask to make)
        if plan.scope == "content":
            mask, meta = _content_mask(dataset, plan, relpath, sources)
        else:
            contributing = list(dict.fromkeys(list(sources) + earlier.kept_sources(relpath, current, source_store)))
            mask = _compose(dataset, relpath, contributing, source_store, plan.include_green, cache)
            meta = {"source": PROPAGATED, "from": "\n".join(contributing), "scope": plan.scope}
        # Checked again with the write, atomically on a MaskFolder: a stroke the autosaver saved
        # while the mask was made wins as well.
        if not save_unless_hand_painted(target_store, relpath, mask, meta):
            continue
        written += 1
        if on_progress is not None:
            on_progress(done, total)
    rewritten, removed = _withdraw(dataset, plan, earlier, (source_store, target_store), cache)
    logger.info("propagation (%s): wrote %d masks, removed %d", plan.scope, written + rewritten, removed)
    return PropagationResult(written + rewritten, removed, plan)
