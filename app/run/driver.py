"""Run a trainer to its end without a window: the one loop that consumes a trainer's events.

The command line (progress on the terminal) and the benchmarks (a scripted user answering the
feedback rounds) drive a `Trainer` the same way: start its thread, hand every
event to a callback on the calling thread, stop at `TrainingFinished` or `TrainingFailed`. The
desktop app does the same through Tk's event loop (`ui.event_pump`) instead.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Optional, Tuple

from app.run import messages as msg
from app.run.trainer import Trainer

EventCallback = Callable[[Trainer, Any], None]  # (the trainer, one of app.run.messages' events)
POLL_SECONDS = 0.2  # how often a quiet queue checks that the trainer thread is still alive


def drive_trainer(
    make_trainer: Callable[[Callable[[Any], None]], Trainer],
    on_event: Optional[EventCallback] = None,
    on_interrupt: Optional[Callable[[], None]] = None,
) -> Tuple[Trainer, Optional[msg.TrainingFinished | msg.TrainingFailed]]:
    """Build a trainer with `make_trainer(emit)`, run it in its thread, feed its events to
    `on_event(trainer, event)` here; returns (trainer, the final event, or None when the thread
    died without one).

    Ctrl+C (KeyboardInterrupt) asks the trainer to stop after the current batch, calls
    `on_interrupt()`, waits until the thread has saved and ended (a second Ctrl+C, or torchrun's
    SIGTERM after the first, does not cut the save short), and re-raises.
    """
    events: "queue.Queue[Any]" = queue.Queue()
    trainer = make_trainer(events.put)
    thread = trainer.start()
    outcome = None
    try:
        while outcome is None:
            try:
                event = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if not thread.is_alive() and events.empty():
                    break
                continue
            if on_event is not None:
                on_event(trainer, event)
            if isinstance(event, (msg.TrainingFinished, msg.TrainingFailed)):
                outcome = event
    except KeyboardInterrupt:
        trainer.stop()
        if on_interrupt is not None:
            on_interrupt()
        _join_through_interrupts(thread)
        raise
    thread.join()
    return trainer, outcome


def _join_through_interrupts(thread: threading.Thread) -> None:
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt:
            pass
