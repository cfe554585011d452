"""Save each finished brush stroke's mask in the background, so a crash loses at most the
stroke being drawn.

Writing a mask PNG atomically (temp file, fsync, `os.replace`) takes about 85 ms for a
768 x 768 mask and over a second for a 12-megapixel one: too slow for the Tk thread after
every stroke. `MaskAutosaver` owns one worker thread. `request(relpath, mask)` hands it a copy
of the mask; a newer request for the same image replaces one still waiting (the debounce: a
burst of strokes or undos costs one write of the latest state). An empty mask deletes the
stored file, as leaving an emptied image always did. `flush()` waits until everything asked
for is on disk (Done, Cancel, closing, propagation). A failed write is kept in `failures()`
(relpath -> message) until a later write of that image succeeds, so the window can tell the
user, and is logged. No tkinter here: tested without a display.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, Dict, Optional

import numpy as np

log = logging.getLogger(__name__)


class MaskAutosaver:
    """A background writer of masks into a `datasets.MaskStore` (or anything with `save(relpath,
    mask)` and `delete(relpath)`)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._pending: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._failures: Dict[str, str] = {}
        self._busy = 0  # writes taken by the worker and not finished
        self._closed = False
        self._condition = threading.Condition()
        self.writes = 0  # masks written or deleted (tests, benches)
        self._thread = threading.Thread(target=self._work, name="mask-autosave", daemon=True)
        self._thread.start()

    def request(self, relpath: str, mask: np.ndarray) -> None:
        """Save `mask` (H x W int8 in {-1, 0, 1}; copied now) for image `relpath` soon."""
        copy = np.array(mask, dtype=np.int8, copy=True)
        with self._condition:
            if self._closed:
                raise RuntimeError("the autosaver is closed")
            self._pending.pop(relpath, None)
            self._pending[relpath] = copy
            self._condition.notify_all()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every requested mask is written (or failed); False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._pending and not self._busy, timeout=timeout)

    @property
    def idle(self) -> bool:
        with self._condition:
            return not self._pending and not self._busy

    def failures(self) -> Dict[str, str]:
        """relpath -> error message of masks whose last write failed."""
        with self._condition:
            return dict(self._failures)

    def close(self, timeout: Optional[float] = 30.0) -> bool:
        """Flush, then end the worker thread; True when everything was written in time."""
        flushed = self.flush(timeout)
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join(timeout=1.0)
        return flushed

    def _work(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return  # closed and nothing left
                relpath, mask = self._pending.popitem(last=False)
                self._busy += 1
            error: Optional[str] = None
            try:
                if mask.any():
                    self.store.save(relpath, mask)
                else:
                    self.store.delete(relpath)
            except Exception as exc:  # noqa: BLE001 -- reported to the window, never lost
                log.exception("cannot save the mask of %s", relpath)
                error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, OSError) else str(exc)
            with self._condition:
                self._busy -= 1
                self.writes += 1
                if error is None:
                    self._failures.pop(relpath, None)
                else:
                    self._failures[relpath] = error
                self._condition.notify_all()
