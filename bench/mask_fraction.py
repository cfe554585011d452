"""Plain training against training with masks on a fraction of the images, through the CLI.

Issue 2's claim: on the demo data, `main.py train --masks DIR/truth/train` with only 5 % of the
training images masked beats plain `train` on the decoy-free test split by a wide margin. This
script copies the truth masks of a seeded random 5 % (or --fraction) of the training images into
a folder, runs `train` plain; with the masks and the penalty only, masked images drawn as often
as the others (--no-counterexamples --oversample 1); the same with masked images drawn 10x as
often (the default, app/engine/oversampling.py); and with the masks as the app trains by default
(penalty + oversampling + counterexamples). Then `evaluate`s each on `test/`. Prints one row per
seed and the mean.

    python bench/mask_fraction.py                        # 5 %, 10 epochs, seeds 0 1 2
    python bench/mask_fraction.py --epochs 6 --seeds 0   # about 2 min
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shutil
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from app.cli.main import main as cli  # noqa: E402
from datasets import make_demo_data  # noqa: E402

VARIANTS = {
    "plain": ["--guidance", "none"],
    "penalty, uniform": ["--no-counterexamples", "--oversample", "1"],
    "penalty, oversampled": ["--no-counterexamples"],
    "defaults": [],
}


def masked_subset(demo: Path, fraction: float, seed: int, out: Path) -> int:
    """Copy the truth masks of a random `fraction` of the training images to `out`; the count."""
    truth = demo / "truth" / "train"
    masks = sorted(path.relative_to(truth) for path in truth.rglob("*.png"))
    chosen = random.Random(seed).sample(masks, max(1, round(fraction * len(masks))))
    for relpath in chosen:
        (out / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(truth / relpath, out / relpath)
    return len(chosen)


def run(args_list: list[str]) -> str:
    """Run the CLI quietly; its stdout."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(args_list)
    if code != 0:
        raise SystemExit(f"main.py {' '.join(args_list)} failed ({code}):\n{err.getvalue()}")
    return out.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="demo folder (default: generated with seed 0 in a temp folder)")
    parser.add_argument("--fraction", type=float, default=0.05, help="share of training images masked")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lam", type=float, help="guidance weight (default: RRR's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="mask-fraction-"))
    try:
        demo = Path(args.data) if args.data else make_demo_data(work / "demo", seed=0).root
        results: dict[str, list[float]] = {name: [] for name in VARIANTS}
        print(
            f"demo {demo}, {args.fraction:.0%} of training images masked, {args.epochs} epochs, RRR, "
            f"lambda {args.lam if args.lam is not None else 'default'}"
        )
        print(f"{'seed':>4}  " + "  ".join(f"{name:>20}" for name in VARIANTS), flush=True)
        for seed in args.seeds:
            masks = work / f"masks-{seed}"
            count = masked_subset(demo, args.fraction, seed, masks)
            row = []
            for name, extra in VARIANTS.items():
                out = work / f"run-{seed}-{len(row)}"
                train = [
                    "train",
                    "--data",
                    str(demo / "train"),
                    "--val",
                    str(demo / "val"),
                    "--epochs",
                    str(args.epochs),
                    "--seed",
                    str(seed),
                    "--out",
                    str(out),
                ]
                if name != "plain":
                    train += ["--masks", str(masks)] + (["--lam", str(args.lam)] if args.lam is not None else [])
                run(train + extra)
                result = json.loads(run(["evaluate", "--checkpoint", str(out / "model.pt"), "--data", str(demo / "test")]))
                results[name].append(result["accuracy"])
                row.append(result["accuracy"])
            print(f"{seed:>4}  " + "  ".join(f"{value:>20.3f}" for value in row) + f"   ({count} masked)", flush=True)

        def summary(values: list[float]) -> str:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.3f} +- {spread:.3f}"

        print(f"{'mean':>4}  " + "  ".join(f"{summary(values):>20}" for values in results.values()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
