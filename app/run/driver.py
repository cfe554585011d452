"""Run a trainer to its end without a window: the one loop that consumes a trainer's events.

The command line (progress on the terminal) and the benchmarks (a scripted user answering the
feedback rounds) drive a `Trainer` the same way: start its thread, hand every
event to a callback on the calling thread, stop at `TrainingFinished` or `TrainingFailed`. The
desktop app does the same through Tk's event loop (`ui.tk_support.event_pump`) instead.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any, Callable, Optional, Tuple

from app.run import messages as msg
from app.run.stop_signals import signal_number, stop_signals_once
from app.run.trainer import Trainer

EventCallback = Callable[[Trainer, Any], None]  # (the trainer, one of app.run.messages' events)
POLL_SECONDS = 0.2  # how often a quiet queue checks that the trainer thread is still alive


class RunInterrupted(KeyboardInterrupt):
    """Raised by `drive_trainer` after a stop signal, once the trainer has saved and ended:
    `trainer`, its final event (`outcome`, None when it sent none) and `signum`."""

    def __init__(self, trainer: Trainer, outcome: Any, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.trainer = trainer
        self.outcome = outcome
        self.signum = signum


def drive_trainer(
    make_trainer: Callable[[Callable[[Any], None]], Trainer],
    on_event: Optional[EventCallback] = None,
    on_interrupt: Optional[Callable[[], None]] = None,
) -> Tuple[Trainer, Optional[msg.TrainingFinished | msg.TrainingFailed]]:
    """Build a trainer with `make_trainer(emit)`, run it in its thread, feed its events to
    `on_event(trainer, event)` here; returns (trainer, the final event, or None when the thread
    died without one).

    Ctrl+C, SIGTERM or SIGHUP (`app.run.stop_signals`) asks the trainer to stop after the
    current batch, calls `on_interrupt()`, feeds the remaining events until the thread has
    saved and ended (further stop signals are ignored meanwhile, so a second Ctrl+C never cuts
    the save short), and raises RunInterrupted (a KeyboardInterrupt).
    """
    events: "queue.Queue[Any]" = queue.Queue()
    trainer = make_trainer(events.put)
    thread: Optional[threading.Thread] = None
    with stop_signals_once():  # one handler throughout: a second Ctrl+C raises nothing
        try:
            thread = trainer.start()
            outcome = _pump(trainer, thread, events, on_event)
        except KeyboardInterrupt as interrupt:
            trainer.stop()
            if on_interrupt is not None:
                with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
                    on_interrupt()
            outcome = _pump(trainer, thread, events, on_event) if thread is not None else None
            if thread is not None:
                thread.join()
            raise RunInterrupted(trainer, outcome, signal_number(interrupt)) from None
        thread.join()  # past its final event: the thread only releases its lock now
    return trainer, outcome


def _pump(trainer: Trainer, thread: threading.Thread, events: "queue.Queue[Any]", on_event: Optional[EventCallback]) -> Any:
    """Feed events to `on_event` until the final one (or the thread died without one); never
    calls `Thread.join`, whose interruption corrupts the thread's state (see stop_signals)."""
    while True:
        try:
            event = events.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if not thread.is_alive() and events.empty():
                return None
            continue
        if on_event is not None:
            with contextlib.suppress(OSError):  # a closed terminal must not stop the save
                on_event(trainer, event)
        if isinstance(event, (msg.TrainingFinished, msg.TrainingFailed)):
            return event
