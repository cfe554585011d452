"""trust_checks: the runs from the issue are flagged, a healthy run is not."""

from __future__ import annotations

import math
import sys

from app.engine.trust_checks import REMEDIES, DataSizes, trust_warnings


def _codes(warnings):
    return [w.code for w in warnings]


def test_resnet18_on_a_small_folder_is_flagged():
    """144 training images, 3 steps per epoch: 97 % train, validation down to chance, loss 61."""
    sizes = DataSizes(n_train=144, n_val=36, n_classes=3, batch_size=64, model="resnet18", class_counts=(48, 48, 48))
    history = [
        {"epoch": 1, "train_accuracy": 0.70, "val_loss": 1.0, "val_accuracy": 0.64},
        {"epoch": 2, "train_accuracy": 0.90, "val_loss": 32.0, "val_accuracy": 0.53},
        {"epoch": 3, "train_accuracy": 0.97, "val_loss": 61.0, "val_accuracy": 0.33},
    ]
    warnings = trust_warnings(history, sizes)
    assert _codes(warnings) == ["val_loss_exploding", "modes_disagree", "few_steps"]
    exploding, modes, steps = warnings
    assert "validation loss 61 at epoch 3" in exploding.detail
    assert "training accuracy 97% (train mode) but validation 33%" in modes.detail
    assert "3 steps per epoch, 9 so far" in steps.detail
    for warning in warnings:
        assert set(warning.remedies) <= set(REMEDIES)
        assert "pretrained weights" in warning.advice and "small_cnn" in warning.advice


def test_small_cnn_on_32_images_stuck_at_chance_is_flagged():
    sizes = DataSizes(n_train=32, n_val=8, n_classes=2, batch_size=64, model="small_cnn", class_counts=(16, 16))
    history = [{"epoch": e, "train_accuracy": 0.5, "val_loss": math.log(2), "val_accuracy": 0.5} for e in (1, 2)]
    codes = _codes(trust_warnings(history, sizes))
    assert codes == ["stuck_at_chance", "few_steps", "few_images"]


def test_a_healthy_demo_run_has_no_warning():
    sizes = DataSizes(n_train=1437, n_val=360, n_classes=10, batch_size=64, model="small_cnn")
    history = [
        {"epoch": 1, "train": {"accuracy": 0.4}, "val": {"loss": 1.7, "accuracy": 0.45}},
        {"epoch": 2, "train": {"accuracy": 0.7}, "val": {"loss": 0.9, "accuracy": 0.72}},
    ]
    assert trust_warnings(history, sizes) == []
    assert trust_warnings(history[:1], sizes) == []  # 23 steps per epoch: no "few steps" at 1
    assert trust_warnings([], sizes) == []


def test_non_finite_validation_loss_is_flagged():
    sizes = DataSizes(n_train=2000, n_val=400, n_classes=4, batch_size=32, model="resnet18")
    history = [
        {"epoch": 1, "train_accuracy": 0.5, "val_loss": 1.2, "val_accuracy": 0.5},
        {"epoch": 2, "train_accuracy": 0.6, "val_loss": float("nan"), "val_accuracy": 0.5},
    ]
    assert _codes(trust_warnings(history, sizes)) == ["val_loss_exploding"]


def test_trust_checks_import_no_tkinter_or_torch():
    import subprocess

    code = "import sys, app.engine.trust_checks; print('tkinter' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]),
    )
    assert out.stdout.strip() == "False"
