"""The runs of the effectiveness benchmark: one method, one K, one seed -> one RunResult.

`Benchmark.run(method, k, seed)` trains vanilla, the oracle (no shortcut in the data), RRR with K
random or all truth masks, or the app's own workflow driven through `app.run.Trainer` with a
`ScriptedUser` (bench/simulated_user.py) answering its feedback rounds. `bench/effectiveness.py`
is the command that runs them; `bench/effectiveness_report.py` summarises them.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from simulated_user import ScriptedUser, SimulatedUser, swatch_free_copy
from torch.utils.data import DataLoader

from app.engine import FinetuneConfig, RunPaths, TrainConfig
from app.engine.loops import evaluate
from app.run import Trainer
from app.run import messages as msg
from app.run.driver import drive_trainer
from datasets import ImageFolderData, MaskStore
from datasets import demo as demo_data
from models import model_spec

logger = logging.getLogger("effectiveness")


@dataclass(frozen=True)
class Settings:
    epochs: int = 10  # epochs per method (the same for all)
    feedback_epoch: int = 1  # the workflow's feedback round comes after this epoch
    guidance: str = "rrr"  # guidance loss of every guided method
    lam: float = 100.0  # its weight for the RRR baselines
    lam_workflow: float = 10.0  # its weight in the workflow: the app's default (loss.DEFAULT_LAMBDAS)
    scope: str = "content"  # how the simulated user propagates a round's red (the app's default)
    counterexamples: bool = True  # the workflow swaps red regions (the app's default); RRR baselines never
    oversample: float = TrainConfig.oversample_annotated  # the workflow's draws of masked images (app default)
    corrections: int = 0  # "not this" strokes the simulated user makes on the content preview (0: accepts the plan)
    batch_size: int = 64
    lr: float = 1e-3
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


@dataclass
class RunResult:
    method: str
    k: Optional[int]  # hand-painted (or masked) images; None for vanilla/oracle
    seed: int
    accuracy: float  # decoy-free test accuracy in [0, 1]
    seconds: float
    details: Dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ the engine's path
def run_trainer(
    config: TrainConfig, paths: RunPaths, finetune: FinetuneConfig, on_event: Optional[Callable[[Trainer, Any], None]] = None
) -> Trainer:
    """Run one Trainer to the end in its thread, handing every event to `on_event` (main thread)."""
    trainer, outcome = drive_trainer(lambda emit: Trainer(config, finetune, paths, emit=emit), on_event)
    if isinstance(outcome, msg.TrainingFailed):
        raise RuntimeError(f"training failed: {outcome.message}\n{outcome.details}")
    if outcome is None:
        raise RuntimeError("the trainer thread ended without a last event")
    return trainer


class Benchmark:
    """All runs of one benchmark invocation, sharing data folders and the test split."""

    def __init__(self, demo_dir: Path, work_dir: Path, settings: Settings, prepare: bool = True):
        self.demo = demo_dir
        self.work = work_dir
        self.settings = settings
        spec = model_spec("small_cnn")
        self.test = ImageFolderData(demo_dir / "test", spec.input_size, spec.mean, spec.std)
        self.test_loader = DataLoader(self.test, batch_size=256, shuffle=False)
        self.train_relpaths = ImageFolderData(demo_dir / "train", spec.input_size, spec.mean, spec.std).relpaths
        self.n_train = len(self.train_relpaths)
        self.oracle_dir = work_dir / "oracle"
        if prepare:  # the swatch-free copy for the oracle, made once
            noise = float(getattr(demo_data, "NOISE_SIGMA", 0.0))
            for split in ("train", "val"):
                swatch_free_copy(demo_dir / split, demo_dir / "truth" / split, self.oracle_dir / split, noise, seed=1)

    def run(self, method: str, seed: int, k: Optional[int], prefix: Optional[Path]) -> RunResult:
        """One run by name (the unit of work handed to a worker process)."""
        if method == "vanilla":
            return self.vanilla(seed, prefix)
        if method == "oracle":
            return self.oracle(seed)
        if method == "rrr_all":
            return self.rrr_all(seed)
        if method == "rrr_random":
            return self.rrr_random(seed, k)
        if method == "app":
            return self.workflow(seed, k, prefix)
        raise ValueError(f"unknown method {method}")

    def config(self, seed: int, guidance: Optional[str], **changes: Any) -> TrainConfig:
        s = self.settings
        values = dict(
            model="small_cnn",
            epochs=s.epochs,
            batch_size=s.batch_size,
            lr=s.lr,
            guidance=guidance,
            lam=s.lam if guidance else None,
            seed=seed,
            device="cpu",
            counterexamples=False,
            oversample_annotated=1.0,  # the RRR baselines as published: masked images drawn uniformly
        )
        return TrainConfig(**{**values, **changes})

    def accuracy(self, trainer: Trainer) -> float:
        return float(evaluate(trainer.model, self.test_loader, device=trainer.device)["accuracy"])

    def _folder(self, *parts: Any) -> Path:
        folder = self.work.joinpath(*map(str, parts))
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder

    # ------------------------------------------------------------------ methods
    def prefix(self, seed: int) -> Optional[Path]:
        """Plain training for the epochs before the workflow's feedback epoch; its checkpoint
        (None when the feedback comes after the first epoch: nothing to share)."""
        if self.settings.feedback_epoch < 2:
            return None
        folder = self._folder(seed, "prefix")
        config = self.config(seed, None, epochs=self.settings.feedback_epoch - 1)
        paths = RunPaths(str(self.demo / "train"), str(self.demo / "val"), checkpoint_out=str(folder / "model.pt"))
        run_trainer(config, paths, self.settings.finetune)
        return folder / "model.pt"

    def vanilla(self, seed: int, prefix: Optional[Path]) -> RunResult:
        started = time.monotonic()
        folder = self._folder(seed, "vanilla")
        paths = RunPaths(
            str(self.demo / "train"),
            str(self.demo / "val"),
            init_checkpoint=str(prefix) if prefix else None,
            checkpoint_out=str(folder / "model.pt"),
            resume=prefix is not None,
        )
        trainer = run_trainer(self.config(seed, None), paths, self.settings.finetune)
        return RunResult("vanilla", None, seed, self.accuracy(trainer), time.monotonic() - started)

    def oracle(self, seed: int) -> RunResult:
        started = time.monotonic()
        folder = self._folder(seed, "oracle")
        paths = RunPaths(str(self.oracle_dir / "train"), str(self.oracle_dir / "val"), checkpoint_out=str(folder / "model.pt"))
        trainer = run_trainer(self.config(seed, None), paths, self.settings.finetune)
        return RunResult("oracle", None, seed, self.accuracy(trainer), time.monotonic() - started)

    def rrr_all(self, seed: int) -> RunResult:
        started = time.monotonic()
        folder = self._folder(seed, "rrr_all")
        paths = RunPaths(
            str(self.demo / "train"),
            str(self.demo / "val"),
            masks_dir=str(self.demo / "truth" / "train"),
            checkpoint_out=str(folder / "model.pt"),
        )
        trainer = run_trainer(self.config(seed, self.settings.guidance), paths, self.settings.finetune)
        return RunResult("rrr_all", self.n_train, seed, self.accuracy(trainer), time.monotonic() - started)

    def rrr_random(self, seed: int, k: int) -> RunResult:
        started = time.monotonic()
        folder = self._folder(seed, f"rrr_random_{k}")
        rng = np.random.default_rng(1000 * seed + k)
        chosen = sorted(rng.choice(len(self.train_relpaths), size=k, replace=False).tolist())
        user = SimulatedUser(self.demo / "truth" / "train")
        user.paint(MaskStore(folder / "masks"), [self.train_relpaths[i] for i in chosen])
        paths = RunPaths(
            str(self.demo / "train"),
            str(self.demo / "val"),
            masks_dir=str(folder / "masks"),
            checkpoint_out=str(folder / "model.pt"),
        )
        trainer = run_trainer(self.config(seed, self.settings.guidance), paths, self.settings.finetune)
        return RunResult("rrr_random", k, seed, self.accuracy(trainer), time.monotonic() - started)

    def workflow(self, seed: int, k: int, prefix: Optional[Path]) -> RunResult:
        started = time.monotonic()
        folder = self._folder(seed, f"app_{k}")
        user = SimulatedUser(self.demo / "truth" / "train")
        scripted = ScriptedUser(user, budget=k, scope=self.settings.scope, corrections=self.settings.corrections)
        config = self.config(
            seed,
            self.settings.guidance,
            feedback_every=self.settings.feedback_epoch,
            images_per_round=k,
            selection="unreasonable",
            lam=self.settings.lam_workflow,
            counterexamples=self.settings.counterexamples,
            oversample_annotated=self.settings.oversample,
        )
        paths = RunPaths(
            str(self.demo / "train"),
            str(self.demo / "val"),
            masks_dir=str(folder / "masks"),
            init_checkpoint=str(prefix) if prefix else None,
            checkpoint_out=str(folder / "model.pt"),
            resume=prefix is not None,
            test_dir=str(self.demo / "test"),  # evaluated after every epoch: the run's test curve
            negatives_dir=str(folder / "negatives"),  # where "not this" corrections go
        )
        curve: List[float] = []

        def on_event(trainer: Trainer, event: Any) -> None:
            if isinstance(event, msg.EpochFinished) and "test_accuracy" in event.val:
                curve.append(round(100 * float(event.val["test_accuracy"]), 1))
            scripted(trainer, event)

        trainer = run_trainer(config, paths, self.settings.finetune, on_event=on_event)
        n_masks = len(MaskStore(folder / "masks").annotated())
        return RunResult(
            "app",
            k,
            seed,
            self.accuracy(trainer),
            time.monotonic() - started,
            {"rounds": scripted.rounds, "masks": n_masks, "painted": len(user.painted), "test_curve": curve},
        )


# --------------------------------------------------------------------- workers
_WORKER: Dict[str, Any] = {}


def _init_worker(demo_dir: Path, work: Path, settings: Settings, threads: int) -> None:
    """Set up one worker process: its torch threads and Benchmark (no data copy)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    _WORKER["bench"] = Benchmark(demo_dir, work, settings, prepare=False)


def _run_in_worker(task: tuple) -> RunResult:
    return _WORKER["bench"].run(*task)
