"""Issue 22: what a hostile new user tried that lost data, crashed, printed a traceback or was
silently wrong, each now one clear `error:` line (exit 2), a warning, or the right result.

Signals (Ctrl+C, SIGTERM, SIGHUP, a second Ctrl+C) are sent to real child processes in
`tests/test_kill_safety.py`; the rest runs `app.cli.main` in-process on tiny folders.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

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


# ------------------------------------------------------------------ 7-11: one clear line each
@pytest.fixture
def latin1_data(tmp_path):
    """An image folder with a file name that is not UTF-8 (a Latin-1 é, as old cameras write)."""
    data = make_image_folder(tmp_path / "latin1", per_class=6)
    raw = os.path.join(os.fsencode(data / "cat"), b"caf\xe9.png")
    os.rename(data / "cat" / "cat_001.png", raw)
    return data, "cat/" + os.fsdecode(b"caf\xe9.png")


def test_7_a_non_utf8_image_name_gets_masks_by_propagate_and_the_brush(world, latin1_data, tmp_path, capsys):
    data, relpath = latin1_data
    store = MaskStore(tmp_path / "masks")
    red = np.zeros((32, 32), np.int8)
    red[:8, :8] = 1
    store.save("cat/cat_000.png", red)
    store.save(relpath, red)  # the brush's autosave
    assert np.array_equal(store.load(relpath, (32, 32)), red)
    out = tmp_path / "propagated"
    argv = ["propagate", "--checkpoint", str(world["ckpt"]), "--data", str(data), "--masks", str(tmp_path / "masks")]
    assert main([*argv, "--out", str(out), "--scope", "class", "--source", "cat/cat_000.png"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] >= 1
    assert train(world, tmp_path / "run", "--data", str(data), "--masks", str(out), "--guidance", "rrr") == 0


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"input_size": "64"}, "input_size"),
        ({"seed": "7"}, "seed"),
        ({"guidance": "telepathy"}, "telepathy"),
        ({"lr": "fast"}, "lr"),
    ],
    ids=["input-size-text", "seed-text", "guidance-unknown", "lr-text"],
)
def test_8_a_checkpoints_stored_settings_are_validated(world, tmp_path, capsys, changes, words):
    payload = torch.load(world["ckpt"], weights_only=True)
    payload.pop("content_sha256", None)  # a hand-edited file (with its hash it is case 16's "damaged")
    crafted = tmp_path / "crafted.pt"
    torch.save({**payload, "train_config": {**payload["train_config"], **changes}}, crafted)
    argv = ["finetune", "--checkpoint", str(crafted), "--data", str(world["data"]), "--masks", str(world["masks"])]
    assert main([*argv, "--out", str(tmp_path / "out"), "--max-steps", "2"]) == 2
    one_error_line(capsys, str(crafted), "train_config", words)


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--seed", "36893488147419103232", "seed must be between 0 and"),
        ("--seed", "-1", "seed must be between 0 and"),
        ("--cache-images", "nan", "--cache-images"),
        ("--cache-images", "inf", "--cache-images"),
    ],
)
def test_9_seed_overflow_and_non_finite_cache_are_refused(world, tmp_path, capsys, option, value, words):
    assert train(world, tmp_path / "run", option, value) == 2
    one_error_line(capsys, words)


def test_10_an_allocation_failing_inside_torch_is_one_line(world, tmp_path):
    """A real allocator failure: the child runs under a 4 GB address-space limit (enough to
    import torch) and asks for 2048 px images in batches of 64 (12 GB a batch)."""
    import resource
    import subprocess
    import sys

    limit = 4 * 1024**3

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    root = Path(__file__).resolve().parents[1]
    argv = [sys.executable, str(root / "main.py"), "train", "--data", str(world["data"]), "--out", str(tmp_path / "run")]
    argv += ["--epochs", "1", "--guidance", "none", "--input-size", "2048", "--batch-size", "64"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, preexec_fn=cap_memory, timeout=300)
    if "ImportError" in done.stderr or "failed to map segment" in done.stderr:
        pytest.skip("this machine's torch does not even import under a 4 GB address-space limit")
    lines = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "out of memory" in lines[0] and "--batch-size" in lines[0]


@pytest.fixture
def full_disk(world, tmp_path):
    """A really small tmpfs holding one copy of the world's checkpoint and room for half
    another (as root, where the machine permits mounting), unmounted after."""
    import subprocess

    folder = tmp_path / "full"
    folder.mkdir()
    size_kb = world["ckpt"].stat().st_size * 3 // 2 // 1024
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'}); needs root")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_11_a_really_full_disk_is_one_line_and_the_old_model_survives(world, full_disk, capsys):
    old = world["ckpt"].read_bytes()
    (full_disk / "model.pt").write_bytes(old)
    assert train(world, full_disk) == 2
    one_error_line(capsys, "No space left on device")
    assert (full_disk / "model.pt").read_bytes() == old
    assert not [p for p in full_disk.iterdir() if p.name.endswith(".tmp")]
    free = os.statvfs(full_disk)
    (full_disk / "filler").write_bytes(b"x" * max(0, free.f_bavail * free.f_frsize - 16 * 1024))
    argv = ["finetune", "--checkpoint", str(world["ckpt"]), "--data", str(world["data"]), "--masks", str(world["masks"])]
    assert main([*argv, "--out", str(full_disk), "--max-steps", "2"]) == 2
    one_error_line(capsys, "No space left on device")
    assert (full_disk / "model.pt").read_bytes() == old


# ---------------------------------------------------------- 12-20: refused, warned or right
def test_12_a_class_folder_linked_to_another_class_is_refused(world, tmp_path, capsys):
    data = make_image_folder(tmp_path / "linked", classes=("cat", "dog"), per_class=6)
    (data / "eel").symlink_to(data / "cat", target_is_directory=True)
    assert train(world, tmp_path / "run", "--data", str(data)) == 2
    one_error_line(capsys, str(data / "eel"), "labelled as both classes")


def test_13_validation_folder_equal_to_the_training_folder_is_refused(world, tmp_path, capsys):
    assert train(world, tmp_path / "run", "--val", str(world["data"]) + "/") == 2
    one_error_line(capsys, "is the training folder")


@pytest.mark.parametrize("inside", [False, True], ids=["the-folder", "a-class-folder"])
def test_14_propagate_into_the_image_folder_is_refused(world, tmp_path, capsys, inside):
    out = world["data"] / "cat" if inside else world["data"]
    before = sorted(p.relative_to(world["data"]) for p in world["data"].rglob("*"))
    argv = ["propagate", "--checkpoint", str(world["ckpt"]), "--data", str(world["data"]), "--masks", str(world["masks"])]
    assert main([*argv, "--out", str(out), "--scope", "class"]) == 2
    one_error_line(capsys, "--out", "inside the image folder")
    assert sorted(p.relative_to(world["data"]) for p in world["data"].rglob("*")) == before


@pytest.mark.parametrize("option", ["--similar-lift", "--similar-share"])
def test_15_a_nan_similarity_setting_is_refused(world, tmp_path, capsys, option):
    argv = ["propagate", "--checkpoint", str(world["ckpt"]), "--data", str(world["data"]), "--masks", str(world["masks"])]
    assert main([*argv, "--out", str(tmp_path / "m"), "--scope", "similar", option, "nan"]) == 2
    one_error_line(capsys, option, "finite")


def _flip_bytes_in_largest_tensor(path: Path, count: int = 64) -> None:
    """Flip `count` bytes inside the stored data of the checkpoint's largest tensor (torch's
    zip stores entries uncompressed), leaving the archive and the pickle intact."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)
    raw = bytearray(path.read_bytes())
    name_length = int.from_bytes(raw[entry.header_offset + 26 : entry.header_offset + 28], "little")
    extra_length = int.from_bytes(raw[entry.header_offset + 28 : entry.header_offset + 30], "little")
    start = entry.header_offset + 30 + name_length + extra_length
    for offset in np.linspace(start, start + entry.file_size - 1, count).astype(int):
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_16_a_checkpoint_with_flipped_bytes_is_refused(world, tmp_path, capsys):
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(world["ckpt"].read_bytes())
    _flip_bytes_in_largest_tensor(damaged)
    assert torch.load(damaged, weights_only=True)["state_dict"]  # torch alone loads it
    assert main(["evaluate", "--checkpoint", str(damaged), "--data", str(world["data"])]) == 2
    one_error_line(capsys, str(damaged), "damaged", "hash")
    assert main(["evaluate", "--checkpoint", str(world["ckpt"]), "--data", str(world["data"])]) == 0


def test_16_a_checkpoint_from_before_the_hash_still_loads(world, tmp_path):
    from app.engine.checkpoint import CONTENT_HASH, load_checkpoint

    payload = torch.load(world["ckpt"], weights_only=True)
    del payload[CONTENT_HASH]
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").epoch == 1


def test_17_init_with_another_input_size_is_refused(world, tmp_path, capsys):
    assert train(world, tmp_path / "run", "--init", str(world["ckpt"]), "--input-size", "64") == 2
    one_error_line(capsys, "--input-size 64", "32 px")
    assert train(world, tmp_path / "run", "--init", str(world["ckpt"]), "--input-size", "32") == 0


def test_18_a_huge_lambda_fires_a_trust_warning(world, tmp_path, capsys):
    code = train(world, tmp_path / "run", "--masks", str(world["masks"]), "--guidance", "rrr", "--lam", "1e30")
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: The guidance term swamps")]
    assert len(warnings) == 1 and "--lam" in warnings[0], err


def test_18_an_ordinary_lambda_fires_no_such_warning(world, tmp_path, capsys):
    assert train(world, tmp_path / "run", "--masks", str(world["masks"]), "--guidance", "rrr") == 0
    assert "guidance term swamps" not in capsys.readouterr().err


def test_19_evaluate_with_stdout_closed_is_an_error_not_a_lost_result(world):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    argv = [sys.executable, str(root / "main.py"), "evaluate", "--checkpoint", str(world["ckpt"]), "--data", str(world["data"])]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    closed = subprocess.run(  # `main.py evaluate ... >&-`
        argv,
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.close(1),
    )
    lines = [line for line in closed.stderr.splitlines() if line.startswith("error")]
    assert closed.returncode == 2 and len(lines) == 1 and "standard output is closed" in lines[0], closed.stderr
    with open("/dev/full", "w") as disk_full:  # stdout on a full disk: the JSON cannot be written
        full = subprocess.run(argv, cwd=root, env=env, stdout=disk_full, stderr=subprocess.PIPE, text=True, timeout=300)
    lines = [line for line in full.stderr.splitlines() if line.startswith("error")]
    assert full.returncode == 2 and len(lines) == 1 and "No space left" in lines[0], full.stderr


def test_20_demo_data_killed_midway_leaves_no_partial_data_set(world, tmp_path, capsys):
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    target = tmp_path / "demo"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(root / "main.py"), "demo-data", "--out", str(target)], cwd=root, env=env)
    try:
        deadline = time.monotonic() + 300  # a wait for the midpoint, not a timed assertion
        while not any(tmp_path.glob(".demo.building-*/train/*/*.png")):
            assert proc.poll() is None and time.monotonic() < deadline, "demo-data ended before it wrote an image"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not target.exists()
    assert train(world, tmp_path / "run", "--data", str(target / "train")) == 2
    one_error_line(capsys, "does not exist")


# ------------------------------------------------------------------------------- also seen
def test_also_a_truncated_mask_is_skipped_not_fatal(world, tmp_path, capsys, caplog):
    import logging

    masks = tmp_path / "masks"
    store = MaskStore(masks)
    red = np.zeros((32, 32), np.int8)
    red[:8, :8] = 1
    store.save("cat/cat_000.png", red)
    store.save("cat/cat_001.png", red)
    broken = masks / "cat" / "cat_001.png"
    broken.write_bytes(broken.read_bytes()[:60])  # cut short, as by a full disk or a bad copy
    caplog.set_level(logging.WARNING)
    assert train(world, tmp_path / "run", "--masks", str(masks), "--guidance", "rrr") == 0
    assert "cat/cat_001.png" in caplog.text and "without a mask" in caplog.text
    assert store.load("cat/cat_001.png", (32, 32)) is None
    assert store.load("cat/cat_000.png", (32, 32)) is not None


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_also_a_fifo_or_device_is_not_an_empty_file_and_never_opened(world, tmp_path, capsys, kind):
    data = make_image_folder(tmp_path / "odd", per_class=6)
    odd = data / "cat" / "odd.png"
    if kind == "fifo":
        os.mkfifo(odd)  # opening it for reading would block forever
    else:
        odd.symlink_to("/dev/zero")
    assert train(world, tmp_path / "run", "--data", str(data)) == 0
    err = capsys.readouterr().err
    assert "skipped cat/odd.png: not a regular file" in err and "empty file" not in err


def test_also_a_huge_mask_is_sampled_down_as_it_is_read(tmp_path):
    """A 6000 x 6000 mask read at 32 x 32: numpy's peak stays far below one full-size plane
    (36 MB at one byte a pixel; the old path held several, 3.7 GB at 12000 px)."""
    import tracemalloc

    from datasets.masks import read_mask_array, resize_mask, write_mask

    big = np.zeros((6000, 6000), np.int8)
    big[:3000, :3000] = 1
    big[4000:, 4000:] = -1
    write_mask(tmp_path / "big.png", big)
    tracemalloc.start()
    small = read_mask_array(tmp_path / "big.png", (32, 32))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.array_equal(small, resize_mask(big, (32, 32)))  # the same pixels as before
    assert peak < 4 * 1024**2, peak


def test_also_a_corrupt_exif_block_warns_nothing_on_stderr(tmp_path):
    import warnings

    from PIL import Image

    from datasets.image_loading import check_image, load_rgb

    ifd = b"MM\x00*\x00\x00\x00\x08\x00\x02" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
    ifd += b"\x01\x0f\x00\x02\x00\x00\x00\x50\x00\x00\x00\x40" + b"\x00\x00\x00\x00"  # a tag pointing past the end
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (16, 16), (200, 10, 10)).save(path, exif=b"Exif\x00\x00" + ifd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert check_image(path) is None
        assert load_rgb(path).size == (16, 16)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("command", ["select", "propagate"])
def test_also_masks_given_as_a_file_is_called_a_file(world, tmp_path, capsys, command):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not masks")
    argv = [command, "--checkpoint", str(world["ckpt"]), "--data", str(world["data"]), "--masks", str(a_file)]
    argv += ["--out", str(tmp_path / "m")] if command == "propagate" else ["--k", "2"]
    assert main(argv) == 2
    line = one_error_line(capsys, str(a_file), "is a file")
    assert "does not exist" not in line


@pytest.mark.parametrize("command", ["select", "demo-data"])
@pytest.mark.parametrize("seed", ["-1", "36893488147419103232"])
def test_9_every_seed_option_is_range_checked(world, tmp_path, capsys, command, seed):
    if command == "select":
        argv = ["select", "--checkpoint", str(world["ckpt"]), "--data", str(world["data"]), "--k", "2", "--strategy", "random"]
    else:
        argv = ["demo-data", "--out", str(tmp_path / "demo")]
    assert main([*argv, "--seed", seed]) == 2
    one_error_line(capsys, "--seed must be between 0 and")
    assert not list(tmp_path.iterdir())  # demo-data left nothing behind


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_also_a_checkpoint_that_is_not_a_file_is_said_so(world, tmp_path, capsys, kind):
    odd = tmp_path / "model.pt"
    if kind == "fifo":
        os.mkfifo(odd)
    elif kind == "dev-zero":
        odd.symlink_to("/dev/zero")
    else:
        odd.mkdir()
    assert main(["evaluate", "--checkpoint", str(odd), "--data", str(world["data"])]) == 2
    one_error_line(capsys, str(odd), "not a regular file")
