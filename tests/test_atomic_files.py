"""Atomic writes: old or new file after a crash, ordinary mode, folder fsynced, no leftovers."""

import os
import stat

import pytest

from datasets.atomic_files import FILE_MODE, atomic_open, remove_stale_temp_files, stale_temp_files, temp_name


def test_replaces_the_file_with_the_ordinary_mode_and_fsyncs_the_folder(tmp_path, monkeypatch):
    import datasets.atomic_files as atomic_files

    synced = []
    real = atomic_files.fsync_folder
    monkeypatch.setattr(atomic_files, "fsync_folder", lambda folder: (synced.append(str(folder)), real(folder)))
    target = tmp_path / "model.pt"
    with atomic_open(target, "wb") as stream:
        stream.write(b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(target).st_mode) == FILE_MODE != 0o600
    assert synced == [str(tmp_path)]
    assert os.listdir(tmp_path) == ["model.pt"]


def test_an_error_keeps_the_old_file_and_removes_the_temp_file(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as stream:
            stream.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["metrics.json"]


def test_temp_files_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = tmp_path / temp_name("model.pt", 999999999)
    live = tmp_path / temp_name("model.pt", os.getpid())
    other = tmp_path / temp_name("other.pt", 999999999)
    for path in (dead, live, other):
        path.write_bytes(b"x")
    assert stale_temp_files(tmp_path, "model.pt") == [dead]
    with atomic_open(tmp_path / "model.pt", "wb") as stream:  # the next write of model.pt cleans up
        stream.write(b"ok")
    assert not dead.exists() and live.exists() and other.exists()
    assert remove_stale_temp_files(tmp_path) == 1 and not other.exists()


def test_the_users_files_are_never_removed_whatever_their_name_or_age(tmp_path):
    """Issue 22 case 2: only names this program made (a valid tag) are temp files; the user's
    hidden drafts, old-style look-alikes, forged tags and links to our temp files stay."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    ours = temp_name("model.pt", 999999999)
    kept = [
        ".notes.draft01.tmp",
        ".model.pt.abc123xy.tmp",
        ".model.pt.999999999.0badf00d.tmp",
        ".model.pt.999999999.0badf00d-00000000.steer.tmp",  # a forged tag
    ]
    sub = tmp_path / "sub"
    sub.mkdir()
    for name in kept:
        (tmp_path / name).write_text("mine")
        (sub / name).write_text("mine")
        os.utime(tmp_path / name, (0, 0))
    (tmp_path / ours).symlink_to(victim)  # our name, but a link: not a file we made
    assert remove_stale_temp_files(tmp_path, recursive=True) == 0
    for name in kept:
        assert (tmp_path / name).read_text() == "mine" and (sub / name).read_text() == "mine"
    assert (tmp_path / ours).is_symlink() and victim.read_text() == "keep"


def test_a_target_name_that_is_not_utf8_gets_a_temp_name(tmp_path):
    """Issue 22 case 7: a Linux file name with undecodable bytes (surrogate escapes in Python)."""
    name = os.fsdecode(b"caf\xe9.png")
    with atomic_open(tmp_path / name, "wb") as stream:
        stream.write(b"mask")
    assert (tmp_path / name).read_bytes() == b"mask"
    assert os.listdir(tmp_path) == [name]


def test_a_long_name_gets_a_short_temp_name(tmp_path):
    name = "y" * 250 + ".png"
    assert len(temp_name(name, 4194304).encode()) <= 255
    with atomic_open(tmp_path / name, "wb") as stream:
        stream.write(b"mask")
    assert (tmp_path / name).read_bytes() == b"mask"
