"""The main window's status text and enabled controls per run state (pure, no display)."""

import pytest

from app.run.run_state import ENDED_STATES, RunState
from ui.main_window.run_controls import STATE_TEXT, controls_for


def test_every_state_has_a_status_text():
    assert set(STATE_TEXT) == set(RunState)


@pytest.mark.parametrize("state", [RunState.IDLE, *ENDED_STATES])
def test_at_rest_train_and_sessions_work_stop_and_pause_do_not(state):
    controls = controls_for(state)
    assert controls.train and controls.sessions and controls.settings
    assert not controls.stop and not controls.pause


@pytest.mark.parametrize("state", [RunState.TRAINING, RunState.WAITING_FOR_FEEDBACK, RunState.FINETUNING])
def test_while_running_only_stop_and_pause_work(state):
    controls = controls_for(state)
    assert controls.stop and controls.pause
    assert not controls.train and not controls.sessions and not controls.settings


def test_stopping_and_preparing_cannot_be_paused():
    stopping = controls_for(RunState.STOPPING)
    assert not stopping.stop and not stopping.pause and not stopping.train
    preparing = controls_for(RunState.PREPARING)
    assert preparing.stop and not preparing.pause


def test_a_requested_pause_is_said_until_it_happens():
    assert controls_for(RunState.TRAINING, pause_requested=True).status == "Pausing after the current batch..."
    assert controls_for(RunState.FINETUNING, pause_requested=True).status.endswith("(training will pause after this round)")
    assert controls_for(RunState.PAUSED).status == "Paused"


def test_states_compare_and_print_as_their_names():
    assert RunState.TRAINING == "training" and str(RunState.WAITING_FOR_DECISION) == "waiting_for_decision"
    assert controls_for("finished") == controls_for(RunState.FINISHED)
    assert "stopped" in ENDED_STATES and {"training": 1}[RunState.TRAINING] == 1  # hashed as the string
