"""Does the app fix a shortcut from a handful of painted images? The effectiveness benchmark.

On the demo shortcut data (scikit-learn digits with a Decoy-MNIST swatch whose shade gives the
label away in train/val but not in test), compare the decoy-free test accuracy of:

- vanilla: plain training, no masks;
- oracle: plain training on a copy of train/val with every swatch painted over with background
  noise (the model never sees a swatch);
- RRR, all masked: RRR with every training image's truth mask (the published setting);
- RRR, K random: RRR with the simulated user's masks on K randomly chosen images, from scratch;
- app workflow, K painted: the app's own path, driven through `app.Trainer` as the desktop app
  drives it: plain training, then after epoch 1 (`--feedback-epoch`) a feedback round: the
  trainer selects K images with the "unreasonable" strategy, the simulated user paints them (red
  over the swatch it sees, slightly dilated; green over the digit) and propagates the round's red
  to every training image (`--scope content`, the default: the content locator finds the painted
  thing wherever it sits; `--scope all`: each place where it saw a swatch becomes "never here"),
  the fine-tune round runs and the user commits; then training continues with the masks
  guiding it (CE + lambda x guidance on the annotated images).

for K = 2, 6, 12 and 1 % and 5 % of the training set, over several seeds (mean and spread).
Every method trains for the same number of epochs and uses the same guidance loss and lambda.
With a later feedback epoch the workflow's first plain epochs are shared with the vanilla run of
the same seed (it resumes from that checkpoint, as reopening a session does). Prints a table,
writes `docs/effectiveness.md` and `docs/effectiveness.png`.

Target: with at most 6 hand-painted images, the workflow reaches at least 98 % of the oracle's
decoy-free test accuracy and beats RRR with the same number of random images.

Run from the repository root (21 minutes measured on 2 shared CPU cores, 2 jobs; --quick: about 5):

    python bench/effectiveness.py
    python bench/effectiveness.py --quick
    python bench/effectiveness.py --replot docs/effectiveness.json     # table and plot again
    python bench/effectiveness.py --data DEMO_DIR --seeds 0 1 2 3 4 --scope similar
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from effectiveness_report import report
from effectiveness_runs import Benchmark, RunResult, Settings, _init_worker, _run_in_worker

from app.engine import TrainConfig
from app.explain.propagation import SCOPES
from datasets import demo as demo_data
from loss import DEFAULT_LAMBDAS

ROOT = Path(__file__).resolve().parents[1]


def parse_k(text: str, n_train: int) -> int:
    """'6' -> 6; '1%' -> 1 % of the training set, rounded, at least 1."""
    if text.endswith("%"):
        return max(1, round(float(text[:-1]) / 100 * n_train))
    return int(text)


def check_checkout() -> None:
    """Refuse to measure another checkout's code: the .venv's editable install points at the
    folder `make setup` last ran in (a CI clone, once: a whole session's runs measured it)."""
    import app

    used = Path(app.__file__).resolve().parents[1]
    if used != ROOT:
        raise SystemExit(f"this bench imports the app from {used}, not from {ROOT}: run `make setup` here first")


def main(argv: Optional[Sequence[str]] = None) -> int:
    check_checkout()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="demo folder (demo-data output); default: made in a temp folder with seed 0")
    parser.add_argument(
        "--shortcut",
        default="corner",
        choices=demo_data.SHORTCUTS,
        help="the demo made when --data is not given: corner, moving (with varying size) or shape",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, K = 2 and 6, fewer epochs: a few minutes")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default 0 1 2)")
    parser.add_argument("--ks", nargs="+", help="hand-painted image counts; N or N%% (default 2 6 12 1%% 5%%)")
    parser.add_argument("--epochs", type=int, help="epochs per method (default 10; quick 6)")
    parser.add_argument("--feedback-epoch", type=int, help="the workflow's feedback round comes after this epoch (default 1)")
    parser.add_argument("--guidance", default="rrr", choices=("rrr", "punisher", "gradcam"))
    parser.add_argument("--lam", type=float, default=100.0, help="guidance weight of the RRR baselines")
    parser.add_argument(
        "--lam-workflow", type=float, help="guidance weight in the app workflow (default: the app's, loss.DEFAULT_LAMBDAS)"
    )
    parser.add_argument("--scope", default="content", choices=SCOPES + ("none",), help="how the simulated user propagates")
    parser.add_argument(
        "--no-counterexamples", action="store_true", help="the workflow uses the gradient penalty alone (no red-region swapping)"
    )
    parser.add_argument(
        "--oversample",
        type=float,
        default=TrainConfig.oversample_annotated,
        help="the workflow draws masked images this many times as often (1 = uniform)",
    )
    parser.add_argument(
        "--corrections",
        type=int,
        default=0,
        help="'not this' strokes the simulated user makes on the content preview before applying (default 0: a hurried user)",
    )
    parser.add_argument("--methods", nargs="+", default=["vanilla", "oracle", "rrr_all", "rrr_random", "app"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads in all")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, in worker processes (threads are shared out)")
    parser.add_argument("--out-dir", default=str(ROOT / "docs"), help="where effectiveness.md/.png go ('' = nowhere)")
    parser.add_argument("--work", help="scratch folder (default: a temp folder, removed afterwards)")
    parser.add_argument("--replot", metavar="JSON", help="only print and write the report of stored results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.replot:
        report(json.loads(Path(args.replot).read_text(encoding="utf-8")), Path(args.out_dir) if args.out_dir else None)
        return 0
    torch.set_num_threads(args.threads)

    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    epochs = args.epochs or (6 if args.quick else 10)
    settings = Settings(
        epochs=epochs,
        feedback_epoch=args.feedback_epoch or 1,
        guidance=args.guidance,
        lam=args.lam,
        lam_workflow=args.lam_workflow if args.lam_workflow is not None else DEFAULT_LAMBDAS[args.guidance],
        scope=None if args.scope == "none" else args.scope,
        counterexamples=not args.no_counterexamples,  # the trainer's rounds follow the run's switch
        oversample=args.oversample,
        corrections=args.corrections,
    )
    if not 1 <= settings.feedback_epoch < settings.epochs:
        parser.error("--feedback-epoch must be at least 1 and below --epochs")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="effectiveness-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        demo_dir = (
            Path(args.data)
            if args.data
            else Path(
                demo_data.make_demo_data(work / "demo", seed=0, shortcut=args.shortcut, vary_size=args.shortcut == "moving").root
            )
        )
        bench = Benchmark(demo_dir, work, settings)
        ks = sorted(
            {parse_k(k, bench.n_train) for k in (args.ks or (["2", "6"] if args.quick else ["2", "6", "12", "1%", "5%"]))}
        )
        print(
            f"demo data {demo_dir} ({bench.n_train} training images), seeds {seeds}, K {ks}, {epochs} epochs, "
            f"feedback after epoch {settings.feedback_epoch}, {settings.guidance} lambda {settings.lam} "
            f"(workflow {settings.lam_workflow}), "
            f"propagation scope {args.scope}, workflow counterexamples {settings.counterexamples}, "
            f"oversampling {settings.oversample:g}, "
            f"{args.threads} threads, {args.jobs} jobs",
            flush=True,
        )
        results: List[RunResult] = []

        def record(result: RunResult) -> None:
            results.append(result)
            extra = f" {json.dumps(result.details, default=str)}" if result.details else ""
            print(
                f"  seed {result.seed} {result.method:<10} K={result.k!s:<5} test acc {100 * result.accuracy:5.1f} % "
                f"({result.seconds:.0f} s){extra}",
                flush=True,
            )

        prefixes = {seed: bench.prefix(seed) if {"vanilla", "app"} & set(args.methods) else None for seed in seeds}
        tasks = []
        for seed in seeds:
            for method in ("app", "rrr_all", "rrr_random", "oracle", "vanilla"):  # slowest first
                if method not in args.methods:
                    continue
                for k in ks if method in ("app", "rrr_random") else [None]:
                    tasks.append((method, seed, k, prefixes[seed]))
        if args.jobs <= 1:
            for task in tasks:
                record(bench.run(*task))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            context = multiprocessing.get_context("spawn")
            worker_args = (demo_dir, work, settings, max(1, args.threads // args.jobs))
            with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=_init_worker, initargs=worker_args) as pool:
                futures = [pool.submit(_run_in_worker, task) for task in tasks]
                for future in as_completed(futures):
                    record(future.result())
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    record_of_run = {
        "shortcut": _demo_kind(demo_dir),
        "settings": {**dataclasses.asdict(settings), "scope": args.scope},
        "seeds": seeds,
        "ks": ks,
        "n_train": bench.n_train,
        "minutes": (time.monotonic() - started) / 60,
        "jobs": args.jobs,
        "threads": args.threads,
        "results": [dataclasses.asdict(r) for r in results],
    }
    report(record_of_run, Path(args.out_dir) if args.out_dir else None)
    return 0


def _demo_kind(demo_dir: Path) -> str:
    """The demo's shortcut kind, from its demo.json ("corner" for demos made before kinds)."""
    try:
        return str(json.loads((demo_dir / "demo.json").read_text(encoding="utf-8")).get("shortcut", "corner"))
    except (OSError, ValueError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
