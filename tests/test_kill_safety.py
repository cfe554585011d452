"""Issue 22 cases 4-6: real stop signals sent to a real `main.py train` never lose a model.

Ctrl+C (SIGINT), SIGTERM (a cluster scheduler) and SIGHUP (a closed terminal) stop the run
after the current batch: the partial checkpoint is saved beside a complete one (never over it),
`metrics.json` is written, and further signals during the save are ignored (a second Ctrl+C used
to abort the process with "terminate called without an active exception").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli.main import main
from app.engine.checkpoint import load_checkpoint
from tests.conftest import make_image_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def big_data(tmp_path_factory):
    """Enough images that an epoch (120 steps of 2 images at 64 px) lasts far longer than a
    signal's delivery, so every stop lands in the first epoch."""
    return make_image_folder(tmp_path_factory.mktemp("kill") / "data", per_class=150)


def start_training(data: Path, out: Path) -> subprocess.Popen:
    """`main.py train` in a child process, returned once it has loaded its data and trains."""
    argv = [sys.executable, str(ROOT / "main.py"), "train", "--data", str(data), "--out", str(out)]
    argv += ["--epochs", "1000", "--batch-size", "2", "--input-size", "64", "--guidance", "none"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # "device: ...; N training / M validation images" when it starts training
        if line.startswith("device:"):
            return proc
    proc.wait()
    raise AssertionError(f"train ended before training (exit {proc.returncode})")


def finish(proc: subprocess.Popen) -> str:
    """The rest of the child's stderr once it has exited."""
    _, err = proc.communicate(timeout=300)
    return err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["INT", "TERM", "HUP"])
def test_6_every_stop_signal_saves_a_partial_checkpoint_and_metrics(big_data, tmp_path, signum):
    out = tmp_path / "run"
    proc = start_training(big_data, out)
    os.kill(proc.pid, signum)
    err = finish(proc)
    assert proc.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    assert "stopping after the current batch" in err and "Traceback" not in err, err
    checkpoint = load_checkpoint(out / "model.pt")  # nothing was there: the partial one is the model
    assert checkpoint.metrics["partial_epoch"] is True
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stopped"] is True
    assert f"the checkpoint is in {out / 'model.pt'}" in err


def test_5_a_second_ctrl_c_never_cuts_the_save_short(big_data, tmp_path):
    out = tmp_path / "run"
    proc = start_training(big_data, out)
    os.kill(proc.pid, signal.SIGINT)
    for _ in range(10):  # more Ctrl+C while it stops and saves, 0.1-1 s after the first
        time.sleep(0.1)
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGINT)
    err = finish(proc)
    assert proc.returncode == 130, err
    assert "terminate called" not in err and "Traceback" not in err, err
    assert load_checkpoint(out / "model.pt").metrics["partial_epoch"] is True


def test_4_a_partial_save_goes_beside_a_complete_checkpoint(big_data, tmp_path, capsys):
    out = tmp_path / "run"
    small = make_image_folder(tmp_path / "small", per_class=6)
    argv = ["train", "--data", str(small), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--guidance", "none"]
    assert main(argv) == 0
    good = (out / "model.pt").read_bytes()
    proc = start_training(big_data, out)  # a second run into the same folder, stopped in its first epoch
    os.kill(proc.pid, signal.SIGINT)
    err = finish(proc)
    assert proc.returncode == 130, err
    assert (out / "model.pt").read_bytes() == good
    partial = load_checkpoint(out / "model.partial.pt")
    assert partial.metrics["partial_epoch"] is True
    assert f"the checkpoint is in {out / 'model.partial.pt'}" in err


def test_a_stop_recalibrates_from_one_batch_not_an_epochs_worth(tmp_path, monkeypatch):
    """Ctrl+C took 26 s on resnet18: the stop's BatchNorm recalibration forwarded 256 images.
    A stop now forwards one batch (64); a completed epoch still the full sample."""
    import app.run.trainer as trainer_module
    from app.engine.batchnorm_recalibration import RECALIBRATION_BATCH, RECALIBRATION_IMAGES
    from app.engine.config import FinetuneConfig, RunPaths, TrainConfig
    from app.run import messages as msg
    from app.run.driver import drive_trainer
    from app.run.trainer import Trainer

    forwarded = []
    real = trainer_module.recalibrate_batchnorm

    def counting(*args, **kwargs):
        forwarded.append(real(*args, **kwargs))
        return forwarded[-1]

    monkeypatch.setattr(trainer_module, "recalibrate_batchnorm", counting)
    data = make_image_folder(tmp_path / "data", per_class=200)
    config = TrainConfig(epochs=2, batch_size=16, guidance=None, seed=0)
    paths = RunPaths(train_dir=str(data), checkpoint_out=str(tmp_path / "run" / "model.pt"))

    def stop_in_epoch_two(trainer, event):
        if isinstance(event, msg.BatchFinished) and event.epoch == 2:
            trainer.stop()

    trainer, outcome = drive_trainer(lambda emit: Trainer(config, FinetuneConfig(), paths, emit=emit), stop_in_epoch_two)
    assert isinstance(outcome, msg.TrainingFinished) and outcome.stopped
    assert forwarded[0] == RECALIBRATION_IMAGES  # the completed epoch 1
    assert forwarded[-1] == RECALIBRATION_BATCH  # the stop in epoch 2
    assert load_checkpoint(tmp_path / "run" / "model.partial.pt").metrics["partial_epoch"] is True
