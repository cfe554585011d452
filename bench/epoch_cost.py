"""Cost of whole `main.py train` epochs with masks on a share of the images, against plain ones.

Issue 23: through the CLI, small_cnn on the demo with `--oversample 1`, a run with truth masks on
5 % of the images cost 1.55x a plain run per epoch, where the guided *step* cost 1.2x. This
script runs `train` in this process, alternating plain (no masks) and masked runs so that drift
in machine load hits both alike, and measures the trainer thread's CPU time (steady on a shared
machine, `time.thread_time`) in each part of an epoch:

- `steps`: `train_one_epoch` (data loading, counterexamples, guided steps);
- `recalibration`: BatchNorm recalibration after the epoch;
- `validation`: the validation split;
- `extra`: the shortcut-broken validation (`app.run.extra_validation`), whose locator is fitted
  at the first epoch of a masked run (reported apart as `locator fit`, once per set of masks).

It prints the median over repeats of each part per epoch, and the masked/plain ratio of whole
epochs with and without the one-time locator fit.

    python bench/epoch_cost.py                          # 5 % and 100 %, 2 epochs, 3 repeats
    python bench/epoch_cost.py --fractions 0.05 --epochs 1 --repeats 2 --extra --penalty-gradient exact
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import io
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch  # noqa: E402

import app.run.extra_validation as extra_validation  # noqa: E402
import app.run.trainer as trainer_module  # noqa: E402
from app.cli.main import main as cli  # noqa: E402
from datasets import make_demo_data  # noqa: E402
from loss import DEFAULT_PENALTY_GRADIENT, PENALTY_GRADIENTS  # noqa: E402

PARTS = ("steps", "recalibration", "validation", "extra")


class PartTimer:
    """Thread-CPU seconds spent in wrapped callables, per part, while installed."""

    def __init__(self) -> None:
        self.seconds: dict = collections.defaultdict(float)
        self._undo: list = []

    def wrap(self, owner, name: str, part: str) -> None:
        original = getattr(owner, name)
        stored = vars(owner).get(name, original)  # the raw attribute (a classmethod stays one)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[part] += time.thread_time() - started

        setattr(owner, name, timed)
        self._undo.append((owner, name, stored))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def masked_subset(demo: Path, fraction: float, out: Path, seed: int = 0) -> int:
    """Copy the truth masks of a seeded random `fraction` of the training images to `out`."""
    truth = demo / "truth" / "train"
    masks = sorted(path.relative_to(truth) for path in truth.rglob("*.png"))
    chosen = random.Random(seed).sample(masks, max(1, round(fraction * len(masks))))
    for relpath in chosen:
        (out / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(truth / relpath, out / relpath)
    return len(chosen)


def timed_run(demo: Path, masks: Path | None, out: Path, args) -> dict:
    """One `train` run; thread-CPU seconds per part (summed over its epochs)."""
    timer = PartTimer()
    timer.wrap(trainer_module, "train_one_epoch", "steps")
    timer.wrap(trainer_module, "recalibrate_batchnorm", "recalibration")
    timer.wrap(trainer_module, "evaluate", "validation")
    timer.wrap(extra_validation.ExtraValidation, "metrics", "extra")
    timer.wrap(extra_validation.BrokenValidation, "build", "locator fit")
    command = ["train", "--data", str(demo / "train"), "--val", str(demo / "val"), "--epochs", str(args.epochs)]
    command += ["--oversample", "1", "--out", str(out), "--device", "cpu", "--penalty-gradient", args.penalty_gradient]
    if masks is not None:
        command += ["--masks", str(masks)]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = cli(command)
    finally:
        timer.restore()
    if code != 0:
        raise SystemExit(f"main.py {' '.join(command)} failed ({code})")
    seconds = dict(timer.seconds)
    seconds["extra"] = seconds.get("extra", 0.0) - seconds.get("locator fit", 0.0)  # the fit is nested in it
    return seconds


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="demo folder (default: generated with seed 0 in a temp folder)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 1.0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="plain/masked pairs per fraction")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--penalty-gradient", choices=PENALTY_GRADIENTS, default=DEFAULT_PENALTY_GRADIENT)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        demo = Path(args.data) if args.data else scratch / "demo"
        if not args.data:
            make_demo_data(demo, seed=0)
        print(
            f"torch {torch.__version__}, {args.threads} thread(s), thread-CPU time, {args.epochs} epoch(s) per run, "
            f"{args.repeats} plain/masked pairs per fraction (medians), --oversample 1, {args.penalty_gradient} penalty gradient"
        )
        header = f"{'masked':>7} {'run':<7} " + " ".join(f"{p:>13}" for p in PARTS) + f" {'epoch':>8} {'locator fit':>12}"
        print("seconds per epoch\n" + header + "\n" + "-" * len(header))
        verdicts = []
        for fraction in args.fractions:
            masks = scratch / f"masks_{fraction:g}"
            masks.mkdir()
            count = masked_subset(demo, fraction, masks)
            runs: dict = {"plain": [], "masked": []}
            for repeat in range(args.repeats):
                for label, folder in (("plain", None), ("masked", masks)):
                    runs[label].append(timed_run(demo, folder, scratch / f"run_{fraction:g}_{label}_{repeat}", args))
            epochs = {}
            for label, measured in runs.items():
                per_part = {p: statistics.median(m.get(p, 0.0) for m in measured) / args.epochs for p in PARTS}
                fit = statistics.median(m.get("locator fit", 0.0) for m in measured)
                epochs[label] = (sum(per_part.values()), fit)
                cells = " ".join(f"{per_part[p]:>13.2f}" for p in PARTS)
                print(f"{fraction:>6.0%} {label:<7} {cells} {epochs[label][0]:>8.2f} {fit:>12.2f}", flush=True)
            steady = epochs["masked"][0] / epochs["plain"][0]
            with_fit = (epochs["masked"][0] * args.epochs + epochs["masked"][1]) / (epochs["plain"][0] * args.epochs)
            verdicts.append(
                f"{fraction:.0%} ({count} masks): masked/plain per epoch {steady:.2f}x, "
                f"whole {args.epochs}-epoch run with the locator fit {with_fit:.2f}x"
            )
        print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
