"""The command line end to end on tiny data: train, evaluate, finetune, errors, help."""

import json

import numpy as np
import pytest

from app.cli.main import main
from datasets import MaskStore


def _train(image_folder, out, *extra):
    return main(["train", "--data", str(image_folder), "--epochs", "2", "--batch-size", "8", "--out", str(out), *extra])


def test_train_writes_checkpoint_and_metrics(image_folder, tmp_path, capsys):
    assert _train(image_folder, tmp_path / "run", "--guidance", "none") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["config"]["guidance"] is None
    printed = json.loads(capsys.readouterr().out)
    assert printed["epochs"] == 2 and printed["checkpoint"].endswith("model.pt")


def test_evaluate_prints_json_with_saliency_shares(image_folder, tmp_path, capsys):
    assert _train(image_folder, tmp_path / "run") == 0
    store = MaskStore(tmp_path / "masks")
    mask = np.zeros((32, 32), dtype=np.int8)
    mask[:, :16] = 1
    mask[:, 16:] = -1
    store.save("cat/cat_000.png", mask)
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(tmp_path / "run" / "model.pt"),
                "--data",
                str(image_folder),
                "--masks",
                str(tmp_path / "masks"),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["n_images"] == 24 and 0.0 <= result["accuracy"] <= 1.0
    assert set(result["per_class_accuracy"]) == {"cat", "dog"}
    assert result["n_annotated"] == 1
    # The mask splits the image in red and green halves: the two shares add up to 1.
    assert result["saliency_on_red"] + result["saliency_on_green"] == pytest.approx(1.0, abs=1e-5)


def test_finetune_writes_candidate_and_report(image_folder, tmp_path, capsys):
    assert _train(image_folder, tmp_path / "run") == 0
    store = MaskStore(tmp_path / "masks")
    mask = np.zeros((32, 32), dtype=np.int8)
    mask[:10, :10] = 1
    for name in ("cat/cat_000.png", "dog/dog_001.png"):
        store.save(name, mask)
    capsys.readouterr()
    code = main(
        [
            "finetune",
            "--checkpoint",
            str(tmp_path / "run" / "model.pt"),
            "--data",
            str(image_folder),
            "--masks",
            str(tmp_path / "masks"),
            "--out",
            str(tmp_path / "ft"),
            "--max-steps",
            "4",
            "--test",
            str(image_folder),  # stands in for a shortcut-free folder of the same classes
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "ft" / "report.json").read_text())
    assert 0.0 <= report["test_accuracy_before"] <= 1.0 and 0.0 <= report["test_accuracy_after"] <= 1.0
    assert report == json.loads(capsys.readouterr().out)
    assert report["steps"] <= 4 and report["stop_reason"] in {"step_cap", "val_loss_rise", "guidance_drop"}
    assert (tmp_path / "ft" / "model.pt").is_file()
    # The candidate continues training like any checkpoint (train --init).
    assert (
        _train(image_folder, tmp_path / "more", "--init", str(tmp_path / "ft" / "model.pt"), "--masks", str(tmp_path / "masks"))
        == 0
    )
    history = json.loads((tmp_path / "more" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [3, 4]
    # The 2 masked images keep guiding it, drawn 10x as often as the other 18 (about 10 of the
    # epoch's 20 draws; app/engine/oversampling.py).
    assert history[0]["train_n_annotated"] >= 5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "/no/such/folder", "--out", "OUT"], "does not exist"),
        (["evaluate", "--checkpoint", "/no/such.pt", "--data", "DATA"], "checkpoint not found"),
        (["train", "--data", "DATA", "--oversample", "0.5", "--out", "OUT"], "oversample_annotated must be at least 1"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(argv, message, tmp_path, image_folder, capsys):
    argv = [str(tmp_path / "out") if a == "OUT" else str(image_folder) if a == "DATA" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_finetune_without_masks_is_a_clear_error(image_folder, tmp_path, capsys):
    assert _train(image_folder, tmp_path / "run", "--epochs", "1") == 0
    (tmp_path / "empty_masks").mkdir()
    code = main(
        [
            "finetune",
            "--checkpoint",
            str(tmp_path / "run" / "model.pt"),
            "--data",
            str(image_folder),
            "--masks",
            str(tmp_path / "empty_masks"),
            "--out",
            str(tmp_path / "ft"),
        ]
    )
    assert code == 2 and "nothing to fine-tune" in capsys.readouterr().err


def test_init_with_another_architecture_is_refused(image_folder, tmp_path, capsys):
    assert _train(image_folder, tmp_path / "run", "--epochs", "1") == 0
    code = _train(image_folder, tmp_path / "more", "--init", str(tmp_path / "run" / "model.pt"), "--model", "resnet18")
    assert code == 2 and "'small_cnn' model, not 'resnet18'" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("train", "evaluate", "finetune", "demo-data", "app"):
        assert command in text


def test_app_without_a_display_says_so_instead_of_a_traceback():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "main.py", "app"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: the desktop app needs a screen") and "Traceback" not in result.stderr
