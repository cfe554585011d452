"""The states of a run, as the trainer thread reports them and the UI shows them.

One list: the trainer emits `StateChanged(RunState.X)`; the desktop app maps every state to a
status text and to which buttons are enabled (`ui.main_window.run_controls`), and a test checks that every
state has its text. A `str` enum, so a state prints, logs and compares as its plain name.
"""

from __future__ import annotations

from enum import Enum


class RunState(str, Enum):
    # Before the trainer exists (set by the desktop app, never emitted by the trainer).
    IDLE = "idle"  # nothing running; Train starts or continues the session
    PREPARING = "preparing"  # writing the built-in demo data (first run only)
    # Emitted by the trainer thread.
    LOADING = "loading"  # scanning the data, building the model
    TRAINING = "training"
    PAUSED = "paused"  # held between batches until resumed
    SELECTING = "selecting"  # choosing the images of a feedback round
    JUDGING = "judging"  # computing the reasonability matrix for the round
    PROPAGATING = "propagating"  # finding the painted content in other images
    WAITING_FOR_FEEDBACK = "waiting_for_feedback"  # the brush window is open
    FINETUNING = "finetuning"  # the fine-tune round on the masks
    WAITING_FOR_DECISION = "waiting_for_decision"  # the chooser is open: commit or reject
    STOPPING = "stopping"  # asked to stop; saving after the current batch
    STOPPED = "stopped"  # ended by Stop (the session is saved and can continue)
    FINISHED = "finished"  # every epoch done
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    # Hash as the plain string, as it compares: `"stopped" in {RunState.STOPPED}` holds (Enum's
    # own hash is its member name's, which would make such a set miss the plain string).
    __hash__ = str.__hash__


UI_ONLY_STATES = frozenset({RunState.IDLE, RunState.PREPARING})
ENDED_STATES = frozenset({RunState.STOPPED, RunState.FINISHED, RunState.FAILED})
ROUND_STATES = frozenset({RunState.WAITING_FOR_FEEDBACK, RunState.FINETUNING, RunState.WAITING_FOR_DECISION})
