"""Who made a mask: painted by hand, or written by propagation (`meta["source"]`).

A hand-painted mask is the user's own statement about an image and is never overwritten by a
rule derived from another image; a propagated mask records its sources (`meta["from"]`, relpaths
separated by newlines) so propagating a source again can replace what it wrote before.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Tuple

import numpy as np

from datasets import RED, MaskStore

PROPAGATED = "propagated"  # meta["source"] of a propagated mask


def _by_hand(meta: Mapping[str, str]) -> bool:
    """Whether a mask with this meta was painted by a person (anything not propagated)."""
    return meta.get("source") != PROPAGATED


def is_propagated(store: MaskStore, relpath: str) -> bool:
    """Whether `relpath` has a mask in `store` and it was written by propagation."""
    return store.has(relpath) and store.meta(relpath).get("source") == PROPAGATED


def is_hand_painted(store: Optional[MaskStore], relpath: str) -> bool:
    """Whether `relpath` has a mask in `store` that a person painted (not propagated)."""
    return store is not None and store.has(relpath) and _by_hand(store.meta(relpath))


def save_unless_hand_painted(
    store: MaskStore, relpath: str, mask: np.ndarray, meta: Optional[Mapping[str, object]] = None
) -> bool:
    """Write a propagated mask unless `relpath` has a hand-painted one; whether it wrote. On a
    `MaskFolder` the check and the write hold its lock, so the brush's autosaver cannot slip a
    stroke in between and have it overwritten."""
    return store.save_unless(relpath, mask, meta, keep=_by_hand)


def delete_unless_hand_painted(store: MaskStore, relpath: str) -> bool:
    """Delete `relpath`'s mask unless it is hand-painted (atomically on a `MaskFolder`); whether
    one was deleted."""
    return store.delete_unless(relpath, keep=_by_hand)


def hand_painted(store: MaskStore) -> List[str]:
    """Relpaths of the hand-painted masks in `store`, sorted (what a feedback round should skip)."""
    return [relpath for relpath in store.annotated() if _by_hand(store.meta(relpath))]


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
