"""Deliver engine messages from a background thread to the Tk thread.

The trainer runs in its own thread and must never touch a widget, so it puts its events on a
`queue.Queue` (`emit=queue.put`). `EventPump` drains that queue on the Tk thread with
`after()`: every `interval_ms` it handles at most `max_batch` messages, so a burst of
`BatchFinished` events cannot starve the event loop (mouse, redraws) for long. `stop()` cancels
the pending timer, so no callback fires into a destroyed widget.
"""

from __future__ import annotations

import logging
import queue
import tkinter as tk
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_MS = 40  # ~25 ticks a second: feels immediate, costs nothing when idle
DEFAULT_MAX_BATCH = 50  # messages handled per tick; the rest wait for the next tick


class EventPump:
    """Calls `handler(message)` on the Tk thread for every message put on `source`.

    `widget` owns the `after()` timer (any widget of the app; the pump stops by itself if it
    is destroyed). A handler that raises is logged and the pump keeps going: one bad message
    must not freeze the app.
    """

    def __init__(
        self,
        widget: tk.Misc,
        source: "queue.Queue[Any]",
        handler: Callable[[Any], None],
        *,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if interval_ms < 1 or max_batch < 1:
            raise ValueError("interval_ms and max_batch must be >= 1")
        self.widget = widget
        self.source = source
        self.handler = handler
        self.interval_ms = interval_ms
        self.max_batch = max_batch
        self.handled = 0  # messages handled since the pump was made
        self._after_id: Optional[str] = None
        self._destroy_binding: Optional[str] = None
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Begin draining (idempotent)."""
        if self._running:
            return
        self._running = True
        if self._destroy_binding is None:
            # Tk drops a destroyed widget's callbacks, so a pending tick would fire into a
            # deleted command ("invalid command name"): cancel it when the widget goes.
            self._destroy_binding = self.widget.bind("<Destroy>", self._on_destroy, add="+")
        self._schedule()

    def stop(self) -> None:
        """Stop draining and cancel the pending timer. Messages left on the queue stay there."""
        self._running = False
        if self._after_id is not None:
            try:
                self.widget.after_cancel(self._after_id)
            except tk.TclError:  # the widget is already gone: so is its timer
                pass
            self._after_id = None

    def _on_destroy(self, event: tk.Event) -> None:
        if event.widget is self.widget:  # not a child's Destroy bubbling up through bindtags
            self.stop()

    def drain_once(self) -> int:
        """Handle up to `max_batch` queued messages now; return how many were handled."""
        count = 0
        while count < self.max_batch:
            try:
                message = self.source.get_nowait()
            except queue.Empty:
                break
            count += 1
            try:
                self.handler(message)
            except Exception:  # noqa: BLE001 - keep the UI alive; the log shows the bug
                log.exception("handling %s failed", type(message).__name__)
        self.handled += count
        return count

    def _schedule(self) -> None:
        try:
            self._after_id = self.widget.after(self.interval_ms, self._tick)
        except (tk.TclError, RuntimeError):  # widget destroyed / main loop gone
            self._after_id = None
            self._running = False

    def _tick(self) -> None:
        self._after_id = None
        if not self._running:
            return
        try:
            exists = bool(self.widget.winfo_exists())
        except tk.TclError:
            exists = False
        if not exists:
            self._running = False
            return
        self.drain_once()
        if self._running:  # the handler may have stopped the pump (e.g. closing the window)
            self._schedule()
