"""Ctrl+C, SIGTERM and SIGHUP all mean "stop after the current batch and save", once.

A cluster scheduler ends a job with SIGTERM and a closed terminal sends SIGHUP; both used to
kill a run at once (no partial checkpoint, no metrics.json). Within `stop_signals_once()` the
first of them raises `StopRequested`, a KeyboardInterrupt, so it takes Ctrl+C's path; every
later one is a no-op, for the rest of the process. A second Ctrl+C used to interrupt
`Thread.join`, which in CPython 3.11 can mark a still-running thread as stopped, so the process
exited under a running torch thread ("terminate called without an active exception", exit -6)
and the checkpoint was never written.

Signal handlers can only be set from the main thread; elsewhere the block changes nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator, Optional

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

# Set by the first stop signal. Process-wide like the signals themselves: once the process is
# stopping, no block that ends (the driver's, then the command line's) restores a handler that
# would let a later Ctrl+C raise again.
_stopping = threading.Event()


class StopRequested(KeyboardInterrupt):
    """A stop signal (`signum`) arrived; handled exactly as Ctrl+C."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_number(interrupt: BaseException) -> int:
    """The signal behind a KeyboardInterrupt (SIGINT for a plain Ctrl+C)."""
    return getattr(interrupt, "signum", signal.SIGINT)


@contextlib.contextmanager
def stop_signals_once(on_repeat: Optional[Callable[[int], None]] = None) -> Iterator[None]:
    """Within the block the first stop signal raises StopRequested and every later one raises
    nothing (`on_repeat(signum)` is called, e.g. to say "still saving"). One handler for the
    whole block, so no window lets a second Ctrl+C slip through; blocks nest."""

    def handler(signum: int, frame: object) -> None:
        if _stopping.is_set():
            if on_repeat is not None:
                with contextlib.suppress(Exception):
                    on_repeat(signum)
            return
        _stopping.set()
        raise StopRequested(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            # Stopping: SIG_IGN, which (unlike a Python handler) the interpreter keeps while it
            # shuts down; a Ctrl+C then made the exit status -2 instead of 130.
            signal.signal(signum, signal.SIG_IGN if _stopping.is_set() else (old if old is not None else signal.SIG_DFL))
