"""Issue 22: what a hostile new user tried that lost data, crashed, printed a traceback or was
silently wrong, each now one clear `error:` line (exit 2), a warning, or the right result.

Signals (Ctrl+C, SIGTERM, SIGHUP, a second Ctrl+C) are sent to real child processes in
`tests/test_kill_safety.py`; the rest runs `app.cli.main` in-process on tiny folders.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from app.cli.main import main
from datasets import MaskStore
from tests.conftest import make_image_folder

TINY = ["--epochs", "1", "--batch-size", "8", "--guidance", "none"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small image folder, a mask folder and a trained run shared by the tests."""
    root = tmp_path_factory.mktemp("hostile")
    w = {"root": root, "data": make_image_folder(root / "data", per_class=6)}
    red = np.zeros((32, 32), np.int8)
    red[:8, :8] = 1
    store = MaskStore(root / "masks")
    store.save("cat/cat_000.png", red)
    store.save("dog/dog_000.png", red)
    w["masks"] = root / "masks"
    assert main(["train", "--data", str(w["data"]), "--out", str(root / "run"), *TINY]) == 0
    w["ckpt"] = root / "run" / "model.pt"
    return w


def one_error_line(capsys, *needles: str) -> str:
    """The single `error: ...` line on stderr (no traceback), holding every needle."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(needle in lines[0] for needle in needles), err
    return lines[0]


def train(world, out, *extra: str) -> int:
    return main(["train", "--data", str(world["data"]), "--out", str(out), *TINY, *extra])


# ------------------------------------------------------------- 1-4: data loss and security
@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_1_a_lock_file_planted_as_a_link_is_refused_and_its_target_kept(world, tmp_path, capsys, link):
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    out = tmp_path / "shared_run"
    out.mkdir()
    if link == "symbolic":
        (out / ".lock").symlink_to(victim)
    else:
        os.link(victim, out / ".lock")
    assert train(world, out) == 2
    one_error_line(capsys, str(out / ".lock"), "link")
    assert victim.read_text() == "the user's file\n"
    assert not (out / "model.pt").exists()


def test_1_history_is_never_appended_through_a_link(tmp_path):
    from app.engine.config import FinetuneConfig, TrainConfig
    from app.errors import UserError
    from app.run.session import Session

    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    session = Session.create(tmp_path / "s", str(tmp_path), None, TrainConfig(), FinetuneConfig())
    session.history_path.symlink_to(victim)
    with pytest.raises(UserError, match="link"):
        session.append_history({"round": 1})
    assert victim.read_text() == "keep\n"


def _plant_user_files(folder: Path) -> list:
    """Hidden files a user might keep, named like temp files and an hour or more old."""
    planted = []
    for sub in (folder, folder / "cat"):
        sub.mkdir(parents=True, exist_ok=True)
        for name in (".notes.draft01.tmp", ".model.pt.abc123.tmp", ".x.png.12345.0badf00d.tmp"):
            (sub / name).write_text("mine")
            os.utime(sub / name, (0, 0))
            planted.append(sub / name)
    return planted


def test_2_the_users_temp_like_files_survive_train_and_propagate(world, tmp_path, capsys):
    out = tmp_path / "run"
    planted = _plant_user_files(out)
    assert train(world, out) == 0
    masks_out = tmp_path / "propagated"
    planted += _plant_user_files(masks_out)
    base = ["propagate", "--checkpoint", str(world["ckpt"]), "--data", str(world["data"])]
    base += ["--masks", str(world["masks"]), "--out", str(masks_out), "--scope", "class"]
    assert main([*base, "--dry-run"]) == 0
    assert main(base) == 0
    for path in planted:
        assert path.read_text() == "mine", path


def test_3_finetune_never_overwrites_its_source_checkpoint(world, tmp_path, capsys):
    run = tmp_path / "r"
    assert train(world, run) == 0
    source = run / "model.pt"
    before = source.read_bytes()
    capsys.readouterr()
    argv = ["finetune", "--checkpoint", str(source), "--data", str(world["data"])]
    argv += ["--masks", str(world["masks"]), "--out", str(run), "--max-steps", "2"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert source.read_bytes() == before
    report = json.loads(captured.out)
    candidate = Path(report["candidate"])
    assert candidate.is_file() and candidate != source and candidate.parent == run
    assert str(candidate) in captured.err  # said where it went
