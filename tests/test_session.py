"""Session folders: create, reopen, history that survives a crash mid-line."""

import json
import os

import pytest

from app.engine.config import FinetuneConfig, TrainConfig
from app.errors import UserError
from app.run.session import Session, new_session_folder


def test_create_and_open_round_trip(tmp_path, image_folder):
    config = TrainConfig(epochs=3, lam=5.0, guidance="gradcam")
    session = Session.create(tmp_path / "s", image_folder, None, config, FinetuneConfig(max_steps=7))
    assert session.masks_dir.is_dir()
    reopened = Session.open(tmp_path / "s")
    assert reopened.train_config == config
    assert reopened.finetune_config.max_steps == 7
    assert reopened.train_dir == str(image_folder.resolve())
    paths = reopened.run_paths()
    assert paths.masks_dir == str(session.masks_dir) and paths.init_checkpoint is None and not paths.resume


def test_the_test_folder_is_kept_changed_and_cleared(tmp_path, image_folder):
    session = Session.create(tmp_path / "s", image_folder, test_dir=image_folder)
    assert session.run_paths().test_dir == str(image_folder.resolve())
    reopened = Session.open(tmp_path / "s")
    assert reopened.test_dir == str(image_folder.resolve())
    reopened.set_test_dir(None)  # measured no more from the next run on
    assert Session.open(tmp_path / "s").run_paths().test_dir is None
    assert Session.create(tmp_path / "t", image_folder).test_dir is None


def test_a_session_json_from_before_test_folders_opens_without_one(tmp_path, image_folder):
    session = Session.create(tmp_path / "s", image_folder)
    payload = json.loads((session.folder / "session.json").read_text())
    del payload["test_dir"]
    (session.folder / "session.json").write_text(json.dumps(payload))
    assert Session.open(session.folder).test_dir is None


def test_history_appends_lines_and_skips_a_torn_last_line(tmp_path, image_folder):
    session = Session.create(tmp_path / "s", image_folder)
    session.append_history({"round": 1, "decision": "commit"})
    session.append_history({"round": 2, "decision": "reject"})
    with open(session.history_path, "a") as stream:
        stream.write('{"round": 3, "deci')  # the process died mid-write
    assert [r["round"] for r in session.history()] == [1, 2]


def test_bad_folders_get_clear_errors(tmp_path, image_folder):
    with pytest.raises(UserError, match="not a session folder"):
        Session.open(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(UserError, match="not an empty folder"):
        Session.create(tmp_path / "full", image_folder)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "session.json").write_text("{not json")
    with pytest.raises(UserError, match="damaged"):
        Session.open(damaged)


def test_unknown_config_keys_from_a_newer_version_are_ignored(tmp_path, image_folder):
    session = Session.create(tmp_path / "s", image_folder)
    payload = json.loads((session.folder / "session.json").read_text())
    payload["train_config"]["from_the_future"] = 1
    (session.folder / "session.json").write_text(json.dumps(payload))
    assert Session.open(session.folder).train_config == TrainConfig()


def test_new_session_folders_do_not_collide(tmp_path):
    first = new_session_folder(tmp_path)
    first.mkdir(parents=True)
    assert new_session_folder(tmp_path) != first


def test_a_torn_line_never_swallows_the_next_record(tmp_path, image_folder):
    # Issue 11: write 1, half of 2, then 3 and 4: history() returned [1, 4].
    session = Session.create(tmp_path / "s", image_folder)
    session.append_history({"round": 1})
    with open(session.history_path, "a", encoding="utf-8") as stream:
        stream.write('{"round": 2, "images": ["cat/a.p')  # killed mid-write
    session.append_history({"round": 3, "report": {"nested": {"x": 1}}})
    session.append_history({"round": 4})
    assert [r["round"] for r in session.history()] == [1, 3, 4]


def test_history_written_by_an_older_version_gives_back_the_glued_record(tmp_path, image_folder):
    session = Session.create(tmp_path / "s", image_folder)
    session.history_path.write_text(
        '{"round": 1}\n{"round": 2, "ima{"report": {"a": {"b": 2}}, "round": 3}\n{"round": 4}\n', encoding="utf-8"
    )
    assert [r["round"] for r in session.history()] == [1, 3, 4]
    assert session.history()[1]["report"] == {"a": {"b": 2}}


def test_history_refuses_nothing_and_writes_valid_json_for_nan(tmp_path, image_folder):
    session = Session.create(tmp_path / "s", image_folder)
    session.append_history({"round": 1, "report": {"val_loss_after": float("nan")}})
    text = session.history_path.read_text(encoding="utf-8")
    assert "NaN" not in text and session.history()[0]["report"]["val_loss_after"] is None


def test_session_files_are_ordinary_files_and_open_removes_dead_writers_temp_files(tmp_path, image_folder):
    import os
    import stat

    session = Session.create(tmp_path / "s", image_folder)
    mode = stat.S_IMODE(os.stat(session.folder / "session.json").st_mode)
    assert mode & 0o044  # readable by others like any file, not mkstemp's 0600
    from datasets.atomic_files import temp_name

    dead = session.folder / temp_name("checkpoint.pt", 999999999)  # pid that cannot exist
    dead.write_bytes(b"half a checkpoint")
    mask_temp = session.masks_dir / "cat" / temp_name("cat_000.png", 999999999)
    mask_temp.parent.mkdir(parents=True)
    mask_temp.write_bytes(b"half a mask")
    live = session.folder / temp_name("checkpoint.pt")  # a writer still running
    live.write_bytes(b"being written")
    Session.open(session.folder)
    assert not dead.exists() and not mask_temp.exists() and live.exists()


def test_a_session_open_in_another_process_is_refused_with_its_pid(tmp_path, image_folder):
    import subprocess
    import sys

    from app.run.run_lock import FolderLockedError

    session = Session.create(tmp_path / "s", image_folder)
    session.close()  # created sessions are held; let the other process take it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from app.run.run_lock import acquire_session_lock\n"
            "lock = acquire_session_lock(sys.argv[1]); print('held', flush=True); sys.stdin.read()\n",
            str(session.folder),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderLockedError, match=f"open in another window \\(pid {holder.pid}\\)"):
            Session.open(session.folder).lock()
    finally:
        holder.kill()
        holder.wait()
    lock = Session.open(session.folder).lock()  # the lock died with its process
    again = session.lock()  # re-entrant within one process
    again.release()
    lock.release()


def test_an_opened_session_is_locked_until_closed_or_dropped(tmp_path, image_folder):
    """Issue 22: opening a session in the desktop app did not lock it, though `lock`'s
    docstring said so. Now `create` and `open` hold it for the object's life."""
    import gc
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from app.run.run_lock import FolderLockedError\n"
        "from app.run.session import Session\n"
        "try:\n"
        "    Session.open(sys.argv[1])\n"
        "except FolderLockedError as error:\n"
        "    print('refused:', error)\n"
        "else:\n"
        "    print('opened')\n"
    )

    def other_window() -> str:
        done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "s")], capture_output=True, text=True, timeout=300)
        return done.stdout.strip()

    session = Session.create(tmp_path / "s", image_folder)
    session.close()
    opened = Session.open(tmp_path / "s")
    assert other_window().startswith(f"refused: this session is open in another window (pid {os.getpid()})")
    opened.close()
    assert other_window() == "opened"
    opened = Session.open(tmp_path / "s")
    del opened  # a window that forgets its session gives the folder back
    gc.collect()
    assert other_window() == "opened"
