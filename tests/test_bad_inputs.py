"""A hostile new user at the command line: every bad input gets one clear line or documented handling.

Each row is one kind of bad input, run through `app.cli.main` in-process on tiny throwaway
folders. Outcomes:

- ``error``: exit status 2 and exactly one line on stderr, ``error: ...``, naming the problem
  (the given words must appear), never a traceback;
- ``usage``: argparse refuses the option (exit 2, its usage line and ``error:``);
- ``handled``: the command succeeds and does the documented thing (a check function says what).

`figures()` at the bottom counts the rows by outcome for the report of issue 11.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli.main import main
from datasets import DatasetError, MaskStore, mask_path
from tests.conftest import make_image_folder

TINY_TRAIN = ["--epochs", "1", "--batch-size", "8", "--guidance", "none"]


# ----------------------------------------------------------------------------- the world
def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height and holds no pixel data (a decompression bomb's
    signature: it must be refused from its header, before decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/saliency-steering-pwned",))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Folders, masks and checkpoints (good and crafted) shared by every row."""
    root = tmp_path_factory.mktemp("world")
    w = {"root": root}
    w["data"] = make_image_folder(root / "data", per_class=8)
    w["val3"] = make_image_folder(root / "val3", classes=("cat", "dog", "eel"), per_class=3)
    w["three"] = make_image_folder(root / "three", classes=("a", "b", "c"), per_class=3)
    (root / "a_file.txt").write_text("hello")
    w["a_file"] = root / "a_file.txt"
    (root / "empty").mkdir()
    w["empty"] = root / "empty"
    flat = root / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "x.png")
    w["flat"] = flat
    w["one_class"] = make_image_folder(root / "one_class", classes=("only",), per_class=3)
    empty_class = make_image_folder(root / "empty_class", per_class=3)
    (empty_class / "emu").mkdir()
    w["empty_class"] = empty_class
    broken = root / "broken"
    for name in ("cat", "dog"):
        (broken / name).mkdir(parents=True)
        (broken / name / "bad.png").write_bytes(b"not a png at all")
    w["broken"] = broken
    # masks: a good one, a folder laid out for other images (typo), masks with no red/green
    good = MaskStore(root / "masks")
    red = np.zeros((32, 32), np.int8)
    red[:8, :8] = 1
    good.save("cat/cat_000.png", red)
    w["masks"] = root / "masks"
    typo = MaskStore(root / "masks_typo")
    typo.save("cats/cat_000.png", red)
    w["masks_typo"] = root / "masks_typo"
    blank = root / "masks_blank" / "cat"
    blank.mkdir(parents=True)
    Image.new("RGBA", (32, 32), (0, 0, 255, 255)).save(blank / "cat_000.png")
    w["masks_blank"] = root / "masks_blank"
    (root / "masks_empty").mkdir()
    w["masks_empty"] = root / "masks_empty"
    w["masks_inside"] = w["data"] / "cat"
    # a trained checkpoint and crafted ones
    assert main(["train", "--data", str(w["data"]), "--out", str(root / "run"), *TINY_TRAIN]) == 0
    w["ckpt"] = root / "run" / "model.pt"
    payload = torch.load(w["ckpt"], weights_only=True)
    payload.pop("content_sha256")  # hand-made files carry no content hash (a stale one is case 16's "damaged")

    def crafted(name, **changes):
        path = root / f"{name}.pt"
        torch.save({**payload, **changes}, path)
        w[name] = path

    crafted("ck_epoch_text", epoch="abc")
    crafted("ck_state_list", state_dict=[1, 2, 3])
    crafted("ck_input_huge", input_size=200000)
    crafted("ck_model_unknown", model_name="vgg_9000")
    crafted("ck_classes_text", classes="cat")
    crafted("ck_mean_short", mean=[0.5])
    nan_state = {k: v.clone() for k, v in payload["state_dict"].items()}
    first = next(k for k, v in nan_state.items() if v.is_floating_point())
    nan_state[first].fill_(float("nan"))
    crafted("ck_nan", state_dict=nan_state)
    torch.save(payload["state_dict"], root / "bare_state.pt")
    w["bare_state"] = root / "bare_state.pt"
    (root / "ck_text.pt").write_text("this is a text file\n")
    w["ck_text"] = root / "ck_text.pt"
    (root / "ck_empty.pt").write_bytes(b"")
    w["ck_empty"] = root / "ck_empty.pt"
    with open(root / "ck_evil.pt", "wb") as stream:
        pickle.dump(_Evil(), stream)
    w["ck_evil"] = root / "ck_evil.pt"
    torch.save({"state_dict": _Evil()}, root / "ck_evil_torch.pt")
    w["ck_evil_torch"] = root / "ck_evil_torch.pt"
    return w


def _fill(argv, world, out):
    values = {k: str(v) for k, v in world.items()}
    values["out"] = str(out)
    return [a.format(**values) for a in argv]


# ------------------------------------------------------------------------- checks (handled)
def _log_text(captured, caplog):
    return captured.err + caplog.text


def _typo_warned(world, out, captured, caplog):
    text = _log_text(captured, caplog)
    assert "belongs to" in text and "cats/cat_000.png" in text
    assert json.loads(captured.out)["final"]["train_n_annotated"] == 0


def _blank_warned(world, out, captured, caplog):
    text = _log_text(captured, caplog)
    assert "no red" in text and "cat/cat_000.png" in text


def _trained(world, out, captured, caplog):
    assert (out / "model.pt").is_file() and (out / "metrics.json").is_file()


def _nothing_left_behind(world, out, captured, caplog):
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------- the table
T = ["train", "--data", "{data}", "--out", "{out}", *TINY_TRAIN]
E = ["evaluate", "--checkpoint", "{ckpt}", "--data", "{data}"]
F = ["finetune", "--checkpoint", "{ckpt}", "--data", "{data}", "--masks", "{masks}", "--out", "{out}", "--max-steps", "2"]


def _with(base, *changes):
    """`base` with option values replaced (or appended when absent)."""
    argv = list(base)
    for option, value in zip(changes[::2], changes[1::2]):
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
    return argv


CASES = [
    # --- the data folder
    ("data-missing", _with(T, "--data", "/no/such/folder"), "error", "does not exist"),
    ("data-is-file", _with(T, "--data", "{a_file}"), "error", "is a file"),
    ("data-empty", _with(T, "--data", "{empty}"), "error", "is empty"),
    ("data-no-class-folders", _with(T, "--data", "{flat}"), "error", "no class sub-folders"),
    ("data-one-class", _with(T, "--data", "{one_class}"), "error", "only one class"),
    ("data-class-without-images", _with(T, "--data", "{empty_class}"), "error", "hold no usable images"),
    ("data-all-images-broken", _with(T, "--data", "{broken}"), "error", "no usable images"),
    ("val-other-classes", _with(T, "--val", "{val3}"), "error", "class folders"),
    ("val-missing", _with(T, "--val", "/no/such/val"), "error", "does not exist"),
    # --- numbers
    ("epochs-zero", _with(T, "--epochs", "0"), "error", "epochs must be"),
    ("epochs-negative", _with(T, "--epochs", "-3"), "error", "epochs must be"),
    ("epochs-not-a-number", _with(T, "--epochs", "abc"), "usage", "--epochs"),
    ("batch-size-zero", _with(T, "--batch-size", "0"), "error", "batch_size must be"),
    ("lr-zero", _with(T, "--lr", "0"), "error", "lr must be"),
    ("lr-negative", _with(T, "--lr", "-1"), "error", "lr must be"),
    ("lr-nan", _with(T, "--lr", "nan"), "error", "lr must be"),
    ("lr-inf", _with(T, "--lr", "inf"), "error", "lr must be"),
    ("lam-negative", _with(T, "--lam", "-1"), "error", "lambda must be"),
    ("lam-nan", _with(T, "--lam", "nan"), "error", "lambda must be"),
    ("oversample-below-one", _with(T, "--oversample", "0.5"), "error", "oversample_annotated must be at least 1"),
    ("oversample-inf", _with(T, "--oversample", "inf"), "error", "oversample_annotated must be at least 1"),
    ("oversample-nan", _with(T, "--oversample", "nan"), "error", "oversample_annotated must be at least 1"),
    ("val-fraction-zero", _with(T, "--val-fraction", "0"), "error", "val_fraction"),
    ("val-fraction-above-one", _with(T, "--val-fraction", "1.5"), "error", "val_fraction"),
    ("workers-negative", _with(T, "--workers", "-1"), "error", "workers must be"),
    ("input-size-tiny", _with(T, "--input-size", "8"), "error", "input_size must be"),
    ("input-size-huge", _with(T, "--input-size", "100000"), "error", "input_size must be"),
    ("model-unknown", _with(T, "--model", "vgg_9000"), "usage", "--model"),
    ("guidance-unknown", _with(T, "--guidance", "magic"), "usage", "--guidance"),
    ("device-unknown", _with(T, "--device", "tpu7"), "error", "device"),
    ("lr-huge-diverges", _with(T, "--lr", "1e6"), "error", "diverged"),
    # --- masks
    ("masks-missing", _with(T, "--masks", "/no/such/masks"), "error", "does not exist"),
    ("masks-is-file", _with(T, "--masks", "{a_file}"), "error", "is a file"),
    ("masks-inside-data", _with(T, "--masks", "{masks_inside}"), "error", "inside the image folder"),
    ("masks-typo-layout", _with(T, "--masks", "{masks_typo}"), "handled", _typo_warned),
    ("masks-no-red-or-green", _with(T, "--masks", "{masks_blank}"), "handled", _blank_warned),
    # --- the output folder
    ("out-is-file", _with(T, "--out", "{a_file}"), "error", "is a file"),
    ("out-under-a-file", _with(T, "--out", "{a_file}/run"), "error", "cannot create"),
    ("out-cannot-create", _with(T, "--out", "/proc/saliency-steering-run"), "error", "cannot create"),
    # --- checkpoints given to train --init
    ("init-missing", _with(T, "--init", "/no/such.pt"), "error", "checkpoint not found"),
    ("init-text-file", _with(T, "--init", "{ck_text}"), "error", "cannot read checkpoint"),
    ("init-other-architecture", _with(T, "--init", "{ckpt}", "--model", "resnet18"), "error", "not 'resnet18'"),
    ("init-other-classes", _with(T, "--init", "{ckpt}", "--data", "{three}"), "error", "trained on"),
    ("weights-missing", _with(T, "--weights", "/no/such.pth"), "error", "weights file not found"),
    ("weights-text-file", _with(T, "--weights", "{a_file}"), "error", "could not read weights"),
    # --- evaluate: checkpoints
    ("ckpt-missing", _with(E, "--checkpoint", "/no/such.pt"), "error", "checkpoint not found"),
    ("ckpt-is-folder", _with(E, "--checkpoint", "{empty}"), "error", "not a regular file"),
    ("ckpt-text-file", _with(E, "--checkpoint", "{ck_text}"), "error", "not a PyTorch checkpoint"),
    ("ckpt-empty-file", _with(E, "--checkpoint", "{ck_empty}"), "error", "cannot read checkpoint"),
    ("ckpt-malicious-pickle", _with(E, "--checkpoint", "{ck_evil}"), "error", "cannot read checkpoint"),
    ("ckpt-malicious-torch-save", _with(E, "--checkpoint", "{ck_evil_torch}"), "error", "cannot read checkpoint"),
    ("ckpt-bare-state-dict", _with(E, "--checkpoint", "{bare_state}"), "error", "not a checkpoint of this app"),
    ("ckpt-epoch-text", _with(E, "--checkpoint", "{ck_epoch_text}"), "error", "'epoch'"),
    ("ckpt-state-dict-list", _with(E, "--checkpoint", "{ck_state_list}"), "error", "'state_dict'"),
    ("ckpt-input-size-huge", _with(E, "--checkpoint", "{ck_input_huge}"), "error", "'input_size'"),
    ("ckpt-model-unknown", _with(E, "--checkpoint", "{ck_model_unknown}"), "error", "'model_name'"),
    ("ckpt-classes-not-list", _with(E, "--checkpoint", "{ck_classes_text}"), "error", "'classes'"),
    ("ckpt-mean-short", _with(E, "--checkpoint", "{ck_mean_short}"), "error", "'mean'"),
    ("ckpt-nan-weights", _with(E, "--checkpoint", "{ck_nan}"), "error", "NaN/inf"),
    ("evaluate-other-classes", _with(E, "--data", "{three}"), "error", "trained on"),
    ("evaluate-masks-missing", _with(E, "--masks", "/no/such/masks"), "error", "does not exist"),
    # --- finetune settings
    ("ft-max-steps-zero", _with(F, "--max-steps", "0"), "error", "max_steps"),
    ("ft-max-steps-negative", _with(F, "--max-steps", "-5"), "error", "max_steps"),
    ("ft-val-loss-rise-zero", _with(F, "--val-loss-rise", "0"), "error", "val_loss_rise"),
    ("ft-val-loss-rise-below-one", _with(F, "--val-loss-rise", "0.9"), "error", "val_loss_rise"),
    ("ft-guidance-drop-zero", _with(F, "--guidance-drop", "0"), "error", "guidance_drop"),
    ("ft-guidance-drop-above-one", _with(F, "--guidance-drop", "2"), "error", "guidance_drop"),
    ("ft-lr-negative", _with(F, "--lr", "-1"), "error", "learning rate"),
    ("ft-lr-zero", _with(F, "--lr", "0"), "error", "learning rate"),
    ("ft-lam-negative", _with(F, "--lam", "-1"), "error", "--lam"),
    ("ft-lam-nan", _with(F, "--lam", "nan"), "error", "--lam"),
    ("ft-lr-huge-diverges", _with(F, "--lr", "1e6"), "error", "diverged"),
    ("ft-masks-empty", _with(F, "--masks", "{masks_empty}"), "error", "nothing to fine-tune"),
    ("ft-masks-missing", _with(F, "--masks", "/no/such/masks"), "error", "does not exist"),
    ("ft-out-is-file", _with(F, "--out", "{a_file}"), "error", "is a file"),
    ("ft-checkpoint-nan", _with(F, "--checkpoint", "{ck_nan}"), "error", "NaN/inf"),
    # --- select / propagate
    (
        "select-strategy-unknown",
        ["select", "--checkpoint", "{ckpt}", "--data", "{data}", "--k", "2", "--strategy", "best"],
        "usage",
        "--strategy",
    ),
    (
        "propagate-scope-unknown",
        [
            "propagate",
            "--checkpoint",
            "{ckpt}",
            "--data",
            "{data}",
            "--masks",
            "{masks}",
            "--scope",
            "everything",
            "--out",
            "{out}",
        ],
        "usage",
        "--scope",
    ),
    (
        "propagate-masks-empty",
        [
            "propagate",
            "--checkpoint",
            "{ckpt}",
            "--data",
            "{data}",
            "--masks",
            "{masks_empty}",
            "--scope",
            "all",
            "--out",
            "{out}",
        ],
        "error",
        "no hand-painted mask",
    ),
    ("command-unknown", ["fly"], "usage", "invalid choice"),
]


@pytest.mark.parametrize("name, argv, outcome, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, argv, outcome, expected, world, tmp_path, capsys, caplog):
    caplog.set_level(logging.WARNING)
    out = tmp_path / "out"
    argv = _fill(argv, world, out)
    if outcome == "usage":
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "error:" in err and expected in err and "Traceback" not in err
        return
    code = main(argv)
    captured = capsys.readouterr()
    if outcome == "error":
        # progress lines (device, skipped images) may come first; the error is one line
        errors = [line for line in captured.err.splitlines() if line.startswith("error")]
        assert code == 2, captured.err
        assert len(errors) == 1 and errors[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
        assert expected.lower() in errors[0].lower(), errors[0]
        assert not Path("/tmp/saliency-steering-pwned").exists()
    else:
        assert code == 0, captured.err
        expected(world, out, captured, caplog)


# ------------------------------------------------------ cases that need more than an argv
def _one_error_line(capsys, needle):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0] and "Traceback" not in err, err
    return lines[0]


def test_out_read_only(world, tmp_path, capsys, monkeypatch):
    # root ignores permission bits, so the read-only answer is simulated where cli asks it
    import app.cli.common as common

    monkeypatch.setattr(common.os, "access", lambda path, mode: False)
    assert main(_fill(T, world, tmp_path / "ro")) == 2
    _one_error_line(capsys, "cannot write in the --out folder")


def test_disk_full_while_saving_is_one_line(world, tmp_path, capsys, monkeypatch):
    import app.engine.checkpoint as checkpoint

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    assert main(_fill(T, world, tmp_path / "full")) == 2
    _one_error_line(capsys, "No space left on device")
    assert not (tmp_path / "full" / "model.pt").exists()
    assert not [p for p in (tmp_path / "full").iterdir() if p.name.endswith(".tmp")]


def test_disk_full_writing_metrics_is_one_line(world, tmp_path, capsys, monkeypatch):
    import app.cli.training as training

    def full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(training, "write_json", full)
    assert main(_fill(T, world, tmp_path / "full")) == 2
    _one_error_line(capsys, "No space left on device")


def test_second_writer_on_one_out_folder_is_refused(world, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, (str(os.getpid()) + '\\n').encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(out / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(_fill(T, world, out)) == 2
        line = _one_error_line(capsys, "another run is writing to")
        assert f"pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
    # The lock died with its process: no stale lock to clean up.
    assert main(_fill(T, world, out)) == 0


def test_folder_link_loop_is_not_followed_and_said(world, tmp_path, capsys, caplog):
    data = make_image_folder(tmp_path / "looped", per_class=8)
    os.symlink("..", data / "cat" / "loop")
    caplog.set_level(logging.WARNING)
    assert main(_fill(_with(T, "--data", str(data)), world, tmp_path / "run")) == 0
    err = capsys.readouterr().err
    assert "skipped cat/loop: a folder link back into the image folder" in err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    seen = metrics["history"][0]["train_n_images"]
    assert seen <= 16  # 16 images, not hundreds


def test_decompression_bomb_and_broken_images_are_skipped(world, tmp_path, capsys):
    data = make_image_folder(tmp_path / "bombs", per_class=8)
    _png_header_only(data / "cat" / "bomb.png", 100_000, 100_000)
    (data / "dog" / "broken.png").write_bytes(b"\x89PNG broken")
    (data / "dog" / "empty.png").write_bytes(b"")
    (data / "dog" / "notes.txt").write_text("not an image")
    assert main(_fill(_with(T, "--data", str(data)), world, tmp_path / "run")) == 0
    err = capsys.readouterr().err
    assert "skipped cat/bomb.png" in err and "skipped dog/broken.png" in err and "skipped dog/empty.png" in err


def test_odd_image_modes_train(world, tmp_path):
    data = make_image_folder(tmp_path / "modes", per_class=6)
    Image.new("L", (40, 20), 128).save(data / "cat" / "gray.png")
    Image.new("RGBA", (20, 40), (10, 200, 30, 100)).save(data / "cat" / "alpha.png")
    Image.new("P", (33, 33)).save(data / "dog" / "palette.png")
    Image.fromarray(np.full((24, 24), 40000, np.uint16)).save(data / "dog" / "deep.png")
    Image.new("CMYK", (24, 24)).save(data / "dog" / "print.jpg")
    assert main(_fill(_with(T, "--data", str(data)), world, tmp_path / "run")) == 0


def test_long_image_name_gets_a_mask_and_trains(world, tmp_path):
    data = make_image_folder(tmp_path / "long", per_class=8)
    long_name = "x" * 240 + ".png"  # 244 characters: the temp name used to pass 255 bytes
    Image.new("RGB", (32, 32), (200, 10, 10)).save(data / "cat" / long_name)
    store = MaskStore(tmp_path / "long_masks")
    mask = np.zeros((32, 32), np.int8)
    mask[:4, :4] = 1
    store.save(f"cat/{long_name}", mask)
    assert store.has(f"cat/{long_name}")
    assert (
        main(
            _fill(
                _with(T, "--data", str(data), "--masks", str(tmp_path / "long_masks"), "--guidance", "rrr"),
                world,
                tmp_path / "run",
            )
        )
        == 0
    )


@pytest.mark.parametrize("relpath", ["../escape.png", "/etc/passwd", "cat/../../escape.png", "C:\\evil.png"])
def test_mask_paths_never_escape_the_mask_folder(tmp_path, relpath):
    try:
        path = mask_path(tmp_path / "masks", relpath)
    except DatasetError:
        return
    assert (tmp_path / "masks").resolve() in path.resolve().parents


def test_evaluate_prints_valid_json_when_a_class_is_absent(world, tmp_path, capsys):
    # per-class accuracy of a class with no image is NaN inside; stdout must stay valid JSON
    data = make_image_folder(tmp_path / "evaldata", per_class=3)
    assert main(_fill(_with(E, "--data", str(data)), world, tmp_path)) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)


def figures():
    """Rows by outcome (the report's figures): table rows plus the hand-written tests above."""
    counts = {}
    for _, _, outcome, _ in CASES:
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
