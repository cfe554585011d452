"""kill -9 during train, propagate and history appends, and a stop signal during train, lose
nothing (a few trials of bench/kill_trials.py; the bench runs 30)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_kill_trials_lose_nothing(tmp_path):
    spec = importlib.util.spec_from_file_location("kill_trials", ROOT / "bench" / "kill_trials.py")
    kill_trials = importlib.util.module_from_spec(spec)
    sys.modules["kill_trials"] = kill_trials  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(kill_trials)
    finally:
        del sys.modules["kill_trials"]
    results = kill_trials.run_trials({"train": 1, "propagate": 1, "history": 1, "stop": 1}, seed=1, folder=tmp_path)
    assert len(results) == 4
    for result in results:
        assert result.masks_lost_or_corrupt == 0, result
        assert result.checkpoint != "BROKEN", result
        assert result.history_records_lost == 0 and not result.next_append_lost, result
        assert result.temp_files_after_cleanup == 0, result
        assert not result.stop_failed, result
    assert results[2].history_complete_lines > 0
