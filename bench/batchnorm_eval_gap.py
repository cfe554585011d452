"""Eval-mode accuracy of short resnet18 runs with and without BatchNorm recalibration.

Issue 11's case: 180 images of 300x200 px in 3 classes (3 shapes with a coloured corner tag;
144 for training, 36 for validation), `train --model resnet18 --epochs 4`, plain and with 3
painted masks. Without recalibration the running statistics lagged the weights and eval mode
sat at chance (validation 0.333) while training accuracy read 0.97-1.00. This script builds
that folder, runs `main.py train` with `app.engine.batchnorm_recalibration` switched off (as before
the fix) and on, then `evaluate` on all 180 images, and prints one row per run.

    python bench/batchnorm_eval_gap.py                      # resnet18 at 224 px: slow on a CPU
    python bench/batchnorm_eval_gap.py --input-size 112     # about 4x cheaper
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import app.engine.finetune as finetune_module  # noqa: E402
import app.run.trainer as trainer_module  # noqa: E402
from app.cli.main import main as cli  # noqa: E402
from datasets import MaskStore  # noqa: E402

SHAPES = ("circle", "square", "triangle")
TAGS = ((230, 40, 40), (40, 200, 40), (40, 60, 230))


def make_folder(root: Path, per_class: int = 60, seed: int = 0) -> Path:
    """3 shapes at random places on noisy 300x200 images, each class with a coloured corner tag."""
    rng = np.random.default_rng(seed)
    for k, shape in enumerate(SHAPES):
        (root / shape).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(60, 140, (200, 300, 3), dtype=np.uint8)
            picture = Image.fromarray(pixels)
            draw = ImageDraw.Draw(picture)
            x, y, r = int(rng.integers(60, 240)), int(rng.integers(50, 150)), int(rng.integers(20, 40))
            if shape == "circle":
                draw.ellipse((x - r, y - r, x + r, y + r), fill=(240, 240, 240))
            elif shape == "square":
                draw.rectangle((x - r, y - r, x + r, y + r), fill=(240, 240, 240))
            else:
                draw.polygon(((x, y - r), (x - r, y + r), (x + r, y + r)), fill=(240, 240, 240))
            draw.rectangle((0, 0, 30, 30), fill=TAGS[k])
            picture.save(root / shape / f"{shape}_{i:03d}.png")
    return root


def paint_masks(masks: Path) -> None:
    store = MaskStore(masks)
    for shape in SHAPES:
        mask = np.zeros((200, 300), np.int8)
        mask[:32, :32] = 1  # red over the tag: the shortcut
        store.save(f"{shape}/{shape}_000.png", mask)


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(argv)
    if code != 0:
        raise SystemExit(f"{argv[0]} failed: {err.getvalue()[-2000:]}")
    return out.getvalue(), err.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--model", default="resnet18")
    args = parser.parse_args()
    real = trainer_module.recalibrate_batchnorm
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        data = make_folder(root / "data")
        paint_masks(root / "masks")
        for recalibrated in (False, True):
            patched = real if recalibrated else (lambda *a, **k: 0)
            trainer_module.recalibrate_batchnorm = patched
            finetune_module.recalibrate_batchnorm = patched
            for guided in (False, True):
                out = root / f"run-{int(recalibrated)}-{int(guided)}"
                extra = ["--masks", str(root / "masks")] if guided else ["--guidance", "none"]
                started = time.monotonic()
                run(
                    [
                        "train",
                        "--data",
                        str(data),
                        "--model",
                        args.model,
                        "--epochs",
                        str(args.epochs),
                        "--input-size",
                        str(args.input_size),
                        "--batch-size",
                        "32",
                        "--out",
                        str(out),
                        *extra,
                    ]
                )
                seconds = time.monotonic() - started
                history = json.loads((out / "metrics.json").read_text())["history"]
                evaluated = json.loads(run(["evaluate", "--checkpoint", str(out / "model.pt"), "--data", str(data)])[0])
                print(
                    json.dumps(
                        {
                            "recalibrated": recalibrated,
                            "guided": guided,
                            "train_accuracy": [round(h["train_accuracy"], 3) for h in history],
                            "val_accuracy": [round(h["val_accuracy"], 3) for h in history],
                            "val_loss": [round(h["val_loss"], 2) for h in history],
                            "evaluate_all_180": round(evaluated["accuracy"], 3),
                            "per_class": {k: round(v, 2) for k, v in evaluated["per_class_accuracy"].items()},
                            "train_seconds": round(seconds, 1),
                        }
                    ),
                    flush=True,
                )
    trainer_module.recalibrate_batchnorm = real
    finetune_module.recalibrate_batchnorm = real
    return 0


if __name__ == "__main__":
    sys.exit(main())
