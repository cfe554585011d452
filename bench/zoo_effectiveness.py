"""Does the fix hold on shortcuts we did not build, whenever the user paints? The zoo benchmark.

Each draw of the shortcut zoo (`datasets.zoo`: patch, glyph, text, texture, frame or a second
object; fixed, moving or tied to the object; random size, opacity, share and object difficulty)
is one data set. Per draw:

- plain: `--epochs` epochs without masks; its checkpoints after every epoch are kept;
- oracle: the same images without the shortcut (`oracle/`), same epochs;
- for each paint time P (`--paint-after`, e.g. 1 and 8: early, and once the shortcut is
  entrenched), starting from the plain model after epoch P:
  - headless: the command-line path a user takes: `main.py select --k K --strategy
    unreasonable`, the simulated user paints those K images (red over the shortcut with a brush
    margin, green over the digit), `main.py propagate --scope content`, `main.py train --init
    <model after P> --masks <masks> --epochs E` (every other option at its default);
  - app: the desktop app's own round through `app.run.Trainer`: resumed from the plain model
    after epoch P - 1, the feedback round after epoch P (the trainer picks K images
    "unreasonable first", the scripted user paints them, applies content propagation, commits
    the fine-tune round), then E more guided epochs.

All accuracies are on the draw's `test/` split, where every image carries a shortcut of a random
class. Prints one line per run, then the distribution over draws (median, worst, share of draws
at >= 90 % of the oracle) per path and paint time, and writes the JSON (`--out`).

    python bench/zoo_effectiveness.py --draws 0 1 2 3 4 5 6 7 8 9 --jobs 2
    python bench/zoo_effectiveness.py --draws 0 1 --paint-after 8 --paths headless --epochs 6
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from effectiveness import check_checkout
from effectiveness_runs import run_trainer
from simulated_user import ScriptedUser, SimulatedUser, mask_quality
from torch.utils.data import DataLoader

from app.cli.main import main as cli
from app.engine import FinetuneConfig, RunPaths, TrainConfig
from app.engine.loops import evaluate
from app.run import messages as msg
from datasets import RED, ImageFolderData, MaskStore
from datasets.zoo import draw_zoo, make_zoo_data
from models import model_spec

ROOT = Path(__file__).resolve().parents[1]
K_DEFAULT = 6


def run_cli(argv: Sequence[str]) -> Any:
    """`main.py ARGV` in this process; its JSON output. Raises RuntimeError on a non-zero exit."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(list(argv))
    if code != 0:
        raise RuntimeError(f"main.py {' '.join(argv)} exited {code}")
    return json.loads(out.getvalue())


class ZooRun:
    """Every run of one zoo draw, in `work/<draw>`."""

    def __init__(self, seed: int, work: Path, args: argparse.Namespace):
        self.draw = draw_zoo(seed, sizes=tuple(args.sizes))
        self.work = work / f"draw{seed}"
        if self.work.exists():
            shutil.rmtree(self.work)
        self.data = make_zoo_data(self.work / "data", self.draw)
        self.args = args
        self.size = self.draw.size
        spec = model_spec("small_cnn")
        self.test = ImageFolderData(self.data / "test", self.size, spec.mean, spec.std)
        self.results: Dict[str, Any] = {"draw": self.draw.seed, "description": self.draw.describe()}

    def config(self, **changes: Any) -> TrainConfig:
        values = dict(model="small_cnn", epochs=self.args.epochs, seed=0, device="cpu", guidance=None, input_size=self.size)
        return TrainConfig(**{**values, **changes})

    def accuracy(self, model: torch.nn.Module) -> float:
        loader = DataLoader(self.test, batch_size=256)
        return round(float(evaluate(model, loader, device=torch.device("cpu"))["accuracy"]), 4)

    def checkpoint_accuracy(self, path: Path) -> float:
        return round(
            float(
                run_cli(["evaluate", "--checkpoint", str(path), "--data", str(self.data / "test"), "--device", "cpu"])["accuracy"]
            ),
            4,
        )

    # ---------------------------------------------------------------- baselines
    def plain(self) -> None:
        """Plain training; the checkpoint after every epoch kept as plain/epochN.pt."""
        folder = self.work / "plain"
        folder.mkdir(parents=True)

        def keep(trainer: Any, event: Any) -> None:
            if isinstance(event, msg.EpochFinished):
                shutil.copy(folder / "model.pt", folder / f"epoch{event.epoch}.pt")

        paths = RunPaths(str(self.data / "train"), str(self.data / "val"), checkpoint_out=str(folder / "model.pt"))
        trainer = run_trainer(self.config(), paths, FinetuneConfig(), on_event=keep)
        self.results["plain"] = self.accuracy(trainer.model)

    def oracle(self) -> None:
        folder = self.work / "oracle"
        folder.mkdir(parents=True)
        oracle = self.data / "oracle"
        paths = RunPaths(str(oracle / "train"), str(oracle / "val"), checkpoint_out=str(folder / "model.pt"))
        trainer = run_trainer(self.config(), paths, FinetuneConfig())
        self.results["oracle"] = self.accuracy(trainer.model)

    # ---------------------------------------------------------------- the two paths
    def headless(self, paint_after: int) -> Dict[str, Any]:
        """select -> paint -> propagate -> train --init --masks, as a user at a shell would."""
        started = time.monotonic()
        folder = self.work / f"headless{paint_after}"
        masks = folder / "masks"
        masks.mkdir(parents=True)
        model = self.work / "plain" / f"epoch{paint_after}.pt"
        train = str(self.data / "train")
        chosen = run_cli(["select", "--checkpoint", str(model), "--data", train, "--k", str(self.args.k), "--device", "cpu"])
        user = SimulatedUser(self.data / "truth" / "train")
        user.paint(MaskStore(masks), chosen)
        propagated = {"written": 0}  # none of the chosen images shows the shortcut: nothing red to propagate
        if any((user.mask_for(relpath) == RED).any() for relpath in chosen):
            argv = ["propagate", "--checkpoint", str(model), "--data", train, "--masks", str(masks), "--out", str(masks)]
            propagated = run_cli(argv + ["--device", "cpu"])
        others = [r for r in ImageFolderData(train, self.size, (0.5,) * 3, (0.5,) * 3).relpaths if r not in set(chosen)]
        quality = mask_quality(MaskStore(masks), self.data / "truth" / "train", others)
        run = folder / "run"
        argv = ["train", "--init", str(model), "--data", train, "--val", str(self.data / "val"), "--masks", str(masks)]
        argv += ["--epochs", str(self.args.epochs), "--device", "cpu", "--out", str(run), "--test", str(self.data / "test")]
        if self.args.before_issue19:
            argv += ["--head-scale", "1"]
        run_cli(argv)
        history = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["history"]
        return {
            "accuracy": self.checkpoint_accuracy(run / "model.pt"),
            "curve": [round(h.get("val_test_accuracy", float("nan")), 3) for h in history],
            "propagated": propagated.get("written"),
            "masks": {k: round(v, 3) if isinstance(v, float) else v for k, v in quality.items()},
            "seconds": round(time.monotonic() - started),
        }

    def app(self, paint_after: int) -> Dict[str, Any]:
        """The desktop app's round through the Trainer, the scripted user at the brush window."""
        started = time.monotonic()
        folder = self.work / f"app{paint_after}"
        folder.mkdir(parents=True)
        prefix = self.work / "plain" / f"epoch{paint_after - 1}.pt" if paint_after > 1 else None
        user = SimulatedUser(self.data / "truth" / "train")
        scripted = ScriptedUser(user, budget=self.args.k, scope="content")
        config = self.config(
            epochs=paint_after + self.args.epochs,
            guidance=TrainConfig.guidance,
            feedback_every=paint_after,
            images_per_round=self.args.k,
            selection="unreasonable",
        )
        paths = RunPaths(
            str(self.data / "train"),
            str(self.data / "val"),
            masks_dir=str(folder / "masks"),
            init_checkpoint=str(prefix) if prefix else None,
            checkpoint_out=str(folder / "model.pt"),
            resume=prefix is not None,
            test_dir=str(self.data / "test"),
            negatives_dir=str(folder / "negatives"),
        )
        curve: List[float] = []

        def on_event(trainer: Any, event: Any) -> None:
            if isinstance(event, msg.EpochFinished) and "test_accuracy" in event.val:
                curve.append(round(float(event.val["test_accuracy"]), 3))
            scripted(trainer, event)

        if self.args.before_issue19:
            config = config.replace(head_scale=1.0)
        finetune = FinetuneConfig(stop_rule="saliency") if self.args.before_issue19 else FinetuneConfig()
        trainer = run_trainer(config, paths, finetune, on_event=on_event)
        first = scripted.rounds[0] if scripted.rounds else {}
        return {
            "accuracy": self.accuracy(trainer.model),
            "curve": curve,
            "round": first.get("finetune"),
            "propagated": first.get("propagated"),
            "masks": first.get("mask_quality"),
            "seconds": round(time.monotonic() - started),
        }


def run_draw(seed: int, work: Path, args: argparse.Namespace) -> Dict[str, Any]:
    """Every run of one draw; the draw's result record (printed as it goes)."""
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    zoo = ZooRun(seed, work, args)
    print(f"draw {seed}: {zoo.draw.describe()}", flush=True)
    zoo.plain()
    zoo.oracle()
    print(f"  draw {seed} plain {zoo.results['plain']:.3f} oracle {zoo.results['oracle']:.3f}", flush=True)
    for path, paint_after in runs_of(args):
        try:
            outcome = getattr(zoo, path)(paint_after)
        except Exception as error:  # noqa: BLE001 -- a failed path is a result; the draw's others still count
            outcome = {"accuracy": float("nan"), "error": f"{type(error).__name__}: {error}"}
        zoo.results[f"{path}@{paint_after}"] = outcome
        print(f"  draw {seed} {path}@{paint_after} {outcome['accuracy']:.3f} {json.dumps(outcome)}", flush=True)
    if not args.keep:
        shutil.rmtree(zoo.work, ignore_errors=True)
    return zoo.results


def runs_of(args: argparse.Namespace) -> List[tuple]:
    """(path, paint_after) pairs: --runs when given (e.g. app@6), else every path at every time."""
    if args.runs:
        return [(run.split("@")[0], int(run.split("@")[1])) for run in args.runs]
    return [(path, paint_after) for paint_after in args.paint_after for path in args.paths]


def summarise(records: List[Dict[str, Any]], args: argparse.Namespace) -> List[str]:
    """Lines of the distribution table: per path and paint time, accuracy and share of oracle."""
    lines = [
        "| run | median test acc | worst | median share of oracle | worst share | draws >= 90 % of oracle | draws below plain |"
    ]
    lines.append("|---|---|---|---|---|---|---|")
    keys = ["plain", "oracle"] + [f"{p}@{t}" for p, t in runs_of(args)]
    for key in keys:
        accs, shares, below = [], [], 0
        failed = 0
        for record in records:
            if key not in record:
                continue
            acc = record[key]["accuracy"] if isinstance(record[key], dict) else record[key]
            if acc != acc:  # NaN: the path failed (its error is in the record)
                failed += 1
                continue
            accs.append(acc)
            shares.append(acc / max(record["oracle"], 1e-9))
            below += acc < record["plain"] - 1e-9
        if not accs:
            continue
        hit = sum(s >= 0.9 for s in shares)
        lines.append(
            f"| {key} | {statistics.median(accs):.3f} | {min(accs):.3f} | {100 * statistics.median(shares):.0f} % | "
            f"{100 * min(shares):.0f} % | {hit} of {len(accs)} | {below if key not in ('plain', 'oracle') else '-'} |"
            + (f" {failed} failed" if failed else "")
        )
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    check_checkout()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, nargs="+", default=list(range(10)), help="zoo seeds (default 0..9)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 48], help="image sides the zoo draws from")
    parser.add_argument("--paint-after", type=int, nargs="+", default=[1, 8], help="epochs of plain training before painting")
    parser.add_argument("--paths", nargs="+", default=["headless", "app"], choices=("headless", "app"))
    parser.add_argument("--runs", nargs="+", help="path@epoch pairs instead of every path at every time, e.g. app@6 headless@1")
    parser.add_argument("--epochs", type=int, default=10, help="plain/oracle epochs, and guided epochs after painting")
    parser.add_argument("--k", type=int, default=K_DEFAULT, help="images the user paints")
    parser.add_argument("--jobs", type=int, default=2, help="draws in parallel (worker processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--work", help="scratch folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep each draw's folders")
    parser.add_argument(
        "--before-issue19",
        action="store_true",
        help="the engine as it was: no head cooling (head_scale 1), the round's old 'saliency' stop rule",
    )
    parser.add_argument("--out", help="write the records and the table as JSON here")
    args = parser.parse_args(argv)
    if args.runs:
        args.paint_after = sorted({int(run.split("@")[1]) for run in args.runs})
    if max(args.paint_after) > args.epochs:
        parser.error("--paint-after must not exceed --epochs (the plain run provides the models to paint on)")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="zoo-"))
    started = time.monotonic()
    records: List[Dict[str, Any]] = []
    if args.jobs <= 1:
        records = [run_draw(seed, work, args) for seed in args.draws]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            records = list(pool.map(run_draw, args.draws, [work] * len(args.draws), [args] * len(args.draws)))
    table = summarise(records, args)
    print("\n".join(table))
    print(f"{len(records)} draws in {(time.monotonic() - started) / 60:.0f} min")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "records": records, "table": table}, indent=1) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
