"""What the main window shows for a run state: the status text and which controls work.

Pure (no Tk): `controls_for(state, pause_requested)` is the whole rule, tested without a
display; `MainWindow` only applies it to its widgets.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.run.run_state import ENDED_STATES, ROUND_STATES, RunState

STATE_TEXT = {
    RunState.IDLE: "Ready. Press Train to start.",
    RunState.PREPARING: "Preparing the demo data (first run only)...",
    RunState.LOADING: "Loading the data and the model...",
    RunState.TRAINING: "Training",
    RunState.PAUSED: "Paused",
    RunState.SELECTING: "Choosing images for feedback...",
    RunState.JUDGING: "Judging the explanations (reasonability matrix)...",
    RunState.PROPAGATING: "Propagating your red to other images...",
    RunState.WAITING_FOR_FEEDBACK: "Waiting for your paint (brush window)",
    RunState.FINETUNING: "Fine-tuning on the masks...",
    RunState.WAITING_FOR_DECISION: "Waiting for your decision (commit or reject)",
    RunState.STOPPING: "Stopping... saving the session",
    RunState.STOPPED: "Stopped",
    RunState.FINISHED: "Finished",
    RunState.FAILED: "Failed",
}


@dataclass(frozen=True)
class RunControls:
    """The main window's status line and enabled controls in one state."""

    status: str
    train: bool  # Train (start or continue)
    stop: bool
    pause: bool
    sessions: bool  # Open session / New session
    settings: bool  # the settings form and the trust banner's actions


def controls_for(state: RunState, pause_requested: bool = False) -> RunControls:
    """The controls for `state`; `pause_requested`: Pause was pressed and the trainer has not
    paused yet (it pauses between batches, or after a feedback round)."""
    state = RunState(state)
    text = STATE_TEXT[state]
    if pause_requested and state in (RunState.TRAINING, RunState.LOADING):
        text = "Pausing after the current batch..."
    elif pause_requested and state in ROUND_STATES:
        text += " (training will pause after this round)"
    busy = state is not RunState.IDLE and state not in ENDED_STATES
    # Pausing acts between batches; asked for while painting or deciding, it holds the
    # training before its next batch (e.g. to look at a committed model first).
    can_pause = busy and state not in (RunState.PREPARING, RunState.STOPPING)
    return RunControls(
        status=text,
        train=not busy,
        stop=busy and state is not RunState.STOPPING,
        pause=can_pause,
        sessions=not busy,
        settings=not busy,
    )
