"""Atomic writes: old or new file after a crash, ordinary mode, folder fsynced, no leftovers."""

import os
import stat

import pytest

from datasets.atomic_files import FILE_MODE, atomic_open, remove_stale_temp_files, stale_temp_files, temp_stem


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
    dead = tmp_path / ".model.pt.999999999.0badf00d.tmp"
    live = tmp_path / f".model.pt.{os.getpid()}.0badf00d.tmp"
    other = tmp_path / ".other.pt.999999999.0badf00d.tmp"
    for path in (dead, live, other):
        path.write_bytes(b"x")
    assert stale_temp_files(tmp_path, "model.pt") == [dead]
    with atomic_open(tmp_path / "model.pt", "wb") as stream:  # the next write of model.pt cleans up
        stream.write(b"ok")
    assert not dead.exists() and live.exists() and other.exists()
    assert remove_stale_temp_files(tmp_path) == 1 and not other.exists()


def test_old_style_temp_files_go_once_an_hour_old(tmp_path):
    fresh = tmp_path / ".model.pt.abc123xy.tmp"
    old = tmp_path / ".masks.png.zz99yy88.tmp"
    fresh.write_bytes(b"x")
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    remove_stale_temp_files(tmp_path)
    assert fresh.exists() and not old.exists()


def test_a_long_name_gets_a_short_temp_name(tmp_path):
    name = "y" * 250 + ".png"
    assert len(f".{temp_stem(name)}.4194304.0badf00d.tmp".encode()) <= 255
    with atomic_open(tmp_path / name, "wb") as stream:
        stream.write(b"mask")
    assert (tmp_path / name).read_bytes() == b"mask"
