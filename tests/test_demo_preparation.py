"""The demo data behind a blank data folder: found, or made in a background thread that only
posts events (no display needed)."""

from __future__ import annotations

import queue
from pathlib import Path

from ui.main_window.demo_preparation import (
    DemoFailed,
    DemoReady,
    demo_folders,
    demo_is_ready,
    demo_target,
    start_demo_preparation,
)


def test_the_target_is_the_given_folder_or_the_cache(tmp_path, monkeypatch):
    assert demo_target(str(tmp_path / "demo"), "corner") == tmp_path / "demo"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert demo_target(None, "corner").parent == tmp_path / "cache" / "saliency-steering"
    assert demo_target(None, "moving") != demo_target(None, "corner")


def test_only_a_finished_folder_counts_as_ready(tmp_path):
    (tmp_path / "train").mkdir()
    assert not demo_is_ready(tmp_path)  # a half-made folder (no demo.json yet)
    (tmp_path / "demo.json").write_text("{}")
    assert demo_is_ready(tmp_path)


def test_the_runs_folders_with_the_forms_folders_winning(tmp_path):
    assert demo_folders("/d", None) == (str(Path("/d/train")), str(Path("/d/val")), None)  # made before test/
    assert demo_folders("/d", "/mine", "/t") == (str(Path("/d/train")), "/mine", "/t")
    (tmp_path / "test").mkdir()  # the demo's shortcut-free test split is measured by default
    assert demo_folders(str(tmp_path), None)[2] == str(tmp_path / "test")
    assert demo_folders(str(tmp_path), None, "/t")[2] == "/t"


def test_the_thread_posts_ready_with_the_folder_it_made(tmp_path):
    events: "queue.Queue" = queue.Queue()
    calls = []

    def make(target, shortcut):
        calls.append((target, shortcut))
        return target

    thread = start_demo_preparation(tmp_path / "demo", "moving", events.put, make=make)
    thread.join(10)
    assert thread.daemon and thread.name == "demo-data"
    assert calls == [(tmp_path / "demo", "moving")]
    assert events.get_nowait() == DemoReady(str(tmp_path / "demo"))
    assert events.empty()


def test_a_failure_is_posted_as_a_message_with_its_traceback(tmp_path):
    events: "queue.Queue" = queue.Queue()

    def make(target, shortcut):
        raise OSError("No space left on device")

    start_demo_preparation(tmp_path, "corner", events.put, make=make).join(10)
    failed = events.get_nowait()
    assert isinstance(failed, DemoFailed)
    assert failed.message == "Could not make the demo data: No space left on device"
    assert "Traceback" in failed.details and "OSError" in failed.details
