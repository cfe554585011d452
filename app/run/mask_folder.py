"""The one owner of a session's mask folder: every read and write of its masks goes through it.

Two writers share a session's masks: the brush window's autosaver (a UI thread, one stroke at a
time) and the trainer's thread (propagation writes and removes many masks). Each used to hold a
`datasets.MaskStore` of its own on the same folder, kept consistent only by the window flushing
before it asked for a propagation and by the stores' mtime-checked caches. Now the session makes
one `MaskFolder` (`Session.masks`), the UI hands it to the autosaver, and the trainer adopts it
as its training split's masks (`MaskFolder.adopt` takes over the split's store, which knows the
images' names). One object, hence one cache: a save forgets the cached mask at once, whoever
saved it, instead of waiting for the file's modification time to give it away; and one lock
that takes the writes one at a time. (The lock is held per mask, never over a whole
propagation: the brush window waits for its stroke's write when the user leaves an image, and
must not wait for a thousand propagated masks.) `save_unless` and `delete_unless` check a mask
and write it under one hold of that lock, so propagation cannot overwrite a stroke saved between.

A `MaskFolder` offers `datasets.MaskStore`'s interface, so everything that takes a store (the
dataset, propagation, the importers, the autosaver) takes it unchanged.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Optional

import numpy as np

from datasets import MaskStore
from datasets.masks import Keep

if TYPE_CHECKING:  # only named: a session (and the desktop app's window) opens without torch
    import torch


class MaskFolder:
    """The masks of one folder behind one store and one write lock (see the module docstring)."""

    def __init__(self, masks_dir: str | os.PathLike, relpaths: Optional[Iterable[str]] = None):
        """`relpaths`: the image relpaths the folder serves, when known (`datasets.MaskStore`)."""
        self._store = MaskStore(masks_dir, relpaths)
        self._lock = threading.RLock()

    def __getstate__(self) -> dict:  # DataLoader workers get a copy: the store, without the lock
        return {"_store": self._store}

    def __setstate__(self, state: dict) -> None:
        self._store = state["_store"]
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"MaskFolder({str(self.masks_dir)!r})"

    @property
    def masks_dir(self) -> Path:
        return self._store.masks_dir

    def serves(self, masks_dir: str | os.PathLike) -> bool:
        """Whether `masks_dir` is this folder."""
        return os.path.realpath(Path(masks_dir).expanduser()) == os.path.realpath(self.masks_dir.expanduser())

    def adopt(self, store: MaskStore) -> None:
        """Serve through `store` from now on: a store of this folder that knows the images' names
        (the training split's). ValueError for a store of another folder."""
        if not self.serves(store.masks_dir):
            raise ValueError(f"{store!r} is not a store of {self.masks_dir}")
        with self._lock:
            self._store = store

    # ------------------------------------------------------------------ writes (one at a time)
    def save(self, relpath: str, mask: np.ndarray, meta: Optional[Mapping[str, object]] = None) -> Path:
        """Write the mask of image `relpath` (atomic, `datasets.masks.write_mask`); its path."""
        with self._lock:
            return self._store.save(relpath, mask, meta)

    def delete(self, relpath: str) -> None:
        """Remove the mask of image `relpath`; nothing happens when it has none."""
        with self._lock:
            self._store.delete(relpath)

    def save_unless(self, relpath: str, mask: np.ndarray, meta: Optional[Mapping[str, object]] = None, *, keep: Keep) -> bool:
        """`MaskStore.save_unless` under the lock: no stroke can land between check and write."""
        with self._lock:
            return self._store.save_unless(relpath, mask, meta, keep=keep)

    def delete_unless(self, relpath: str, *, keep: Keep) -> bool:
        """`MaskStore.delete_unless` under the lock."""
        with self._lock:
            return self._store.delete_unless(relpath, keep=keep)

    # ------------------------------------------------------------------ reads
    def path_for(self, relpath: str) -> Path:
        return self._store.path_for(relpath)

    def has(self, relpath: str) -> bool:
        return self._store.has(relpath)

    def load(self, relpath: str, size: tuple[int, int]) -> Optional[torch.Tensor]:
        return self._store.load(relpath, size)

    def load_array(self, relpath: str) -> Optional[np.ndarray]:
        return self._store.load_array(relpath)

    def annotated(self) -> list[str]:
        return self._store.annotated()

    def meta(self, relpath: str) -> dict[str, str]:
        return self._store.meta(relpath)
