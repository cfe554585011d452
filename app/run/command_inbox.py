"""The trainer's inbox: commands from the UI thread, waited for by the training thread.

`put` (any thread) takes only `app.run.messages.COMMAND_TYPES`; `wait` (the training thread)
blocks until a command of the kinds the protocol expects now arrives, logging and dropping any
other, and raises `RunStopped` as soon as the run's stop event is set.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Tuple, Type

from app.run import messages as msg

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often a wait looks at the stop event


class RunStopped(Exception):
    """Raised inside the training thread when stop() was requested while it waited."""


class CommandInbox:
    """A queue of trainer commands that a stop interrupts."""

    def __init__(self, stop: threading.Event):
        """`stop`: the run's stop event; set, it ends every wait with RunStopped."""
        self._stop = stop
        self._queue: "queue.Queue[Any]" = queue.Queue()

    def put(self, command: Any) -> None:
        """Queue a command (any thread); TypeError for anything that is not one."""
        if not isinstance(command, msg.COMMAND_TYPES):
            raise TypeError(f"not a trainer command: {command!r}")
        self._queue.put(command)

    def wait(self, accepted: Tuple[Type, ...]) -> Any:
        """The next command of one of the `accepted` types; others are logged and dropped."""
        while True:
            if self._stop.is_set():
                raise RunStopped()
            try:
                command = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if isinstance(command, accepted):
                return command
            logger.warning("ignoring %s while waiting for %s", type(command).__name__, [t.__name__ for t in accepted])
