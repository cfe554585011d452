"""Session folders: create, reopen, history that survives a crash mid-line."""

import json

import pytest

from app.config import FinetuneConfig, TrainConfig
from app.errors import UserError
from app.session import Session, new_session_folder


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
