"""The thread side of a run: start it in a thread, pause, resume and stop it between batches,
hand it commands, and tell the consumer its state.

`Trainer` is a `RunControl`: the UI and the CLI call `start`, `pause`, `resume`, `stop` and
`submit` from any thread; the run's own thread speaks through `_emit`, changes state with
`_set_state` (which emits `StateChanged`) and polls `_should_stop` between batches.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, Callable, Optional

from app.run import messages as msg
from app.run.command_inbox import CommandInbox
from app.run.run_state import RunState


class RunControl(ABC):
    """Start, pause, resume, stop and commands of a run whose body is `run()`."""

    def __init__(self, emit: Callable[[Any], None]):
        """`emit`: where events go (the app passes `queue.put`); called from the run's thread."""
        self._emit = emit
        self._stop = threading.Event()
        self._inbox = CommandInbox(self._stop)
        # Acted on between images or steps while the thread is busy, so they cannot wait in the
        # inbox: Cancel of a propagation, the end of a fine-tune round (`submit` sets them).
        self.cancel_propagation = threading.Event()
        self.stop_round = threading.Event()
        self._running = threading.Event()
        self._running.set()  # set = not paused
        self._thread: Optional[threading.Thread] = None
        self.state = RunState.IDLE  # until the thread starts (never emitted)

    @abstractmethod
    def run(self) -> None:
        """The run's body, blocking (the subclass's)."""

    # ------------------------------------------------------------ control (any thread)
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="trainer", daemon=True)
        self._thread.start()
        return self._thread

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused loop so it can see the stop

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def submit(self, command: Any) -> None:
        """Hand a command (StartFinetune, SkipFeedback, Commit, Reject, PreviewPropagation,
        ApplyPropagation, MarkNotThis, DescribeImages, PrepareImages, PreviewPage) to the training
        thread. CancelPropagation and StopRound act on the work under way, so they set an event
        that work polls instead of waiting in the queue behind it."""
        if isinstance(command, msg.CancelPropagation):
            self.cancel_propagation.set()
            return
        if isinstance(command, msg.StopRound):
            self.stop_round.set()
            return
        self._inbox.put(command)

    # ------------------------------------------------------------ the run's thread
    def _set_state(self, state: RunState) -> None:
        self.state = state
        self._emit(msg.StateChanged(state))

    def _should_stop(self) -> bool:
        """Polled between batches: blocks while paused; True when stop() was called."""
        if not self._running.is_set():
            self._set_state(RunState.PAUSED)
            while not self._running.wait(timeout=0.1):
                pass
            if not self._stop.is_set():
                self._set_state(RunState.TRAINING)
        return self._stop.is_set()
