"""Which property of the propagated masks costs accuracy? Train on controlled mask sets.

On a demo folder, the simulated user paints K random training images and content propagation
(`app.explain.propagation.plan_propagation`, scope "content") locates the shortcut in every other
training image: the located masks L. With the demo's truth masks (T = swatch, D = digit) this
script builds mask folders that differ from L in one property each and trains on each with the
command line (`main.py train --masks DIR --test test/`, the app's defaults: RRR, counterexamples,
oversampling), printing the decoy-free test accuracy per condition:

- truth:        T on every image (the ceiling, 80.2 % at seed 0 measured before);
- located:      L as propagated;
- located+miss: L plus the swatch pixels it missed (L | T): what complete coverage adds;
- located-digit: L minus the digit (L & ~D grown by 1): what the false finds on the digit cost;
- located-both: (L | T) & ~D;
- truth+grow2:  T grown by 2 px (over-large masks alone);
- truth-drop5:  T with 5 % of images unmasked;
- truth-erode:  T eroded by 1 px (only the swatch's core: an uncovered rim).

    python bench/mask_coverage.py --data /tmp/moving --seed 0 --conditions located located+miss

Measured on the moving demo (`main.py demo-data --shortcut moving --vary-size`), seed 0, with the
locator before its red rim was left out (`--set rim=0.0` reproduces it): truth 80.2 %, located
74.1 %, located+miss 77.4 %, located-digit 82.7 %, located-both 84.1 %, truth+grow2 80.2 %.
The finds on the digit cost most; larger masks around the swatch cost nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from locator_coverage import _value, coverage_rows  # noqa: E402
from scipy import ndimage  # noqa: E402

from app.cli.main import main as cli  # noqa: E402
from app.explain.content_locator import LocatorConfig  # noqa: E402
from datasets import GREEN, RED, MaskStore  # noqa: E402
from datasets.masks import read_mask_array  # noqa: E402

CONDITIONS = ("truth", "located", "located+miss", "located-digit", "located-both", "truth+grow2", "truth-drop5", "truth-erode")


def build(condition: str, demo: Path, located: dict, out: Path, seed: int) -> int:
    """Write the condition's red masks to `out`; how many were written."""
    truth_dir = demo / "truth" / "train"
    rng = np.random.default_rng(seed)
    written = 0
    for path in sorted(truth_dir.rglob("*.png")):
        relpath = str(path.relative_to(truth_dir))
        truth = read_mask_array(path)
        swatch, digit = truth == RED, ndimage.binary_dilation(truth == GREEN)
        found = located.get(relpath)
        if condition == "truth":
            red = swatch
        elif condition == "truth+grow2":
            red = ndimage.binary_dilation(swatch, iterations=2)
        elif condition == "truth-drop5":
            red = swatch if rng.random() >= 0.05 else np.zeros_like(swatch)
        elif condition == "truth-erode":
            red = ndimage.binary_erosion(swatch)
        else:
            red = found if found is not None else np.zeros_like(swatch)
            if condition in ("located+miss", "located-both"):
                red = red | swatch
            if condition in ("located-digit", "located-both"):
                red = red & ~digit
        if not red.any():
            continue
        MaskStore(out).save(relpath, np.where(red, np.int8(RED), np.int8(0)).astype(np.int8))
        written += 1
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seed", type=int, default=0, help="training seed (and the painted images' seed)")
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="LocatorConfig overrides for L")
    args = parser.parse_args()
    config = LocatorConfig(**{k: _value(v) for k, v in (item.split("=", 1) for item in args.set)})
    torch.set_num_threads(args.threads)
    demo = Path(args.data)
    located = {}
    if any(c.startswith("located") for c in args.conditions):
        rows, *_ = coverage_rows(demo, args.k, args.seed, config)
        located = {row["relpath"]: row["found"] for row in rows if row["masked"]}
        # the painted images keep what the user painted: the truth red grown by the brush margin
        for relpath in set(r["relpath"] for r in rows) ^ set(
            str(p.relative_to(demo / "truth" / "train")) for p in (demo / "truth" / "train").rglob("*.png")
        ):
            truth = read_mask_array(demo / "truth" / "train" / relpath) == RED
            located[relpath] = ndimage.binary_dilation(truth, structure=np.ones((3, 3), bool))
    for condition in args.conditions:
        with tempfile.TemporaryDirectory() as scratch:
            masks, run = Path(scratch) / "masks", Path(scratch) / "run"
            n = build(condition, demo, located, masks, args.seed)
            started = time.monotonic()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                cli(
                    [
                        "train",
                        "--data",
                        str(demo / "train"),
                        "--val",
                        str(demo / "val"),
                        "--masks",
                        str(masks),
                        "--test",
                        str(demo / "test"),
                        "--epochs",
                        str(args.epochs),
                        "--seed",
                        str(args.seed),
                        "--device",
                        "cpu",
                        "--out",
                        str(run),
                    ]
                )
            metrics = json.loads((run / "metrics.json").read_text())
            accuracy = metrics["history"][-1]["val_test_accuracy"]
            print(
                f"seed {args.seed} {condition:<14} masks {n:4d} test acc {100 * accuracy:5.1f} % "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
