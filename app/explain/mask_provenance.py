"""Who made a mask: painted by hand, or written by propagation (`meta["source"]`).

A hand-painted mask is the user's own statement about an image and is never overwritten by a
rule derived from another image; a propagated mask records its sources (`meta["from"]`, relpaths
separated by newlines) so propagating a source again can replace what it wrote before.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from datasets import RED, MaskStore

PROPAGATED = "propagated"  # meta["source"] of a propagated mask


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
