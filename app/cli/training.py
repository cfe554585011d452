"""`train`: a run of the Trainer from the command line (fresh, resumed, or `--init --masks`).

Its arguments live in the torch-free `training_arguments`; this module (which loads torch) is
imported only when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any, List

from app.cli.common import (
    EXIT_BUG,
    EXIT_OK,
    dumps,
    prepare_out,
    write_json,
)
from app.cli.locator_options import locator_options
from app.cli.progress_printer import progress_printer
from app.engine.checkpoint import load_checkpoint
from app.engine.config import FinetuneConfig, RunPaths, TrainConfig
from app.engine.distributed import process_group
from app.engine.finetune_report import BROKEN_NOISE
from app.errors import UserError
from app.explain.mask_audit import check_masks_folder
from app.run import messages as msg
from app.run.driver import RunInterrupted, drive_trainer
from app.run.trainer import Trainer

__all__ = ["cmd_train", "guidance_verdict"]


def cmd_train(args: argparse.Namespace) -> int:

    with process_group(args.device) as context:  # one process, or one rank under torchrun
        return _train(args, context)


def _train(args: argparse.Namespace, context: Any) -> int:

    model = args.model or "small_cnn"
    if args.init:
        init = load_checkpoint(args.init)
        model = args.model or init.model_name
        if args.input_size is not None and args.input_size != init.input_size:  # it trained at 32 px without a word
            raise UserError(
                f"--input-size {args.input_size} is not the --init checkpoint's {init.input_size} px: a continued "
                f"model keeps its input size; leave --input-size out (or train a new model without --init)"
            )

    check_masks_folder(args.masks)
    config = TrainConfig(
        model=model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        guidance=None if args.guidance == "none" else args.guidance,
        lam=args.lam,
        seed=args.seed,
        device=args.device,
        num_workers=args.workers,
        input_size=args.input_size,
        weights_path=args.weights,
        val_fraction=args.val_fraction,
        counterexamples=not args.no_counterexamples,
        oversample_annotated=args.oversample,
        amp=args.amp,
        cache_images_gb=args.cache_images,
        head_scale=args.head_scale,
        penalty_gradient=args.penalty_gradient,
        **locator_options(args),
    )
    out = Path(args.out)
    paths = RunPaths(
        train_dir=args.data,
        val_dir=args.val,
        masks_dir=args.masks,
        init_checkpoint=args.init,
        checkpoint_out=str(out / "model.pt"),
        test_dir=args.test,
    )
    # Rank 0 is the only writer: it alone creates and locks the run folder.
    with prepare_out(out) if context.is_main else contextlib.nullcontext():
        saved: List[str] = []
        printer = progress_printer(config) if context.is_main else None

        def on_event(trainer: Any, event: Any) -> None:
            if isinstance(event, msg.CheckpointSaved):
                saved.append(event.path)
            if printer is not None:
                printer(trainer, event)

        try:
            trainer, outcome = drive_trainer(
                lambda emit: Trainer(config, FinetuneConfig(), paths, emit=emit, distributed=context),
                on_event=on_event,
                on_interrupt=lambda: print(
                    "\nstopping after the current batch and saving (a second Ctrl+C does not cut the save short)...",
                    file=sys.stderr,
                ),
            )
        except RunInterrupted as stop:
            if context.is_main:
                _report_interrupted(out, config, stop, saved)
            raise
        if isinstance(outcome, msg.TrainingFailed):
            rank = f"rank {context.rank}: " if context.enabled else ""
            if outcome.user_error:
                raise UserError(rank + outcome.message)
            print(rank + outcome.details, file=sys.stderr)
            return EXIT_BUG
        if not context.is_main:
            return EXIT_OK  # rank 0 writes the metrics and prints the summary
        change = trainer.guidance_change()
        write_json(out / "metrics.json", {"config": dataclasses.asdict(config), "history": trainer.history})
    result = {
        "checkpoint": str(out / "model.pt"),
        "epochs": trainer.epoch,
        "final": trainer.history[-1] if trainer.history else None,
    }
    if change is not None:  # masks started guiding the --init model: did they help? First, so nobody misses it.
        verdict = guidance_verdict(change)
        result = {"verdict": verdict, "shortcut_broken_change": dataclasses.asdict(change), **result}
        if verdict.startswith("worse"):
            print(f"warning: this run made the model {verdict}", file=sys.stderr)
    print(dumps(result))
    return EXIT_OK


def guidance_verdict(change: Any) -> str:
    """One line on a run's shortcut-broken validation change (`app.engine.accuracy_change`):
    worse / better / no clear change, beyond sampling noise and BROKEN_NOISE."""

    numbers = f"{100 * change.change:+.1f} points ({change.text()} of {change.n})"
    if change.fell(BROKEN_NOISE):
        return f"worse than before on the shortcut-broken validation: {numbers}"
    if change.rose(BROKEN_NOISE):
        return f"better than before on the shortcut-broken validation: {numbers}"
    return f"no clear change on the shortcut-broken validation: {numbers}"


def _report_interrupted(out: Path, config: TrainConfig, stop: Any, saved: List[str]) -> None:
    """After a stop signal: metrics.json with the epochs done, and where the checkpoint went."""
    trainer = stop.trainer
    with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone; a full disk: said below
        write_json(out / "metrics.json", {"config": dataclasses.asdict(config), "history": trainer.history, "stopped": True})
    failed = isinstance(stop.outcome, msg.TrainingFailed)
    where = f"the checkpoint is in {saved[-1]}" if saved else "no checkpoint was written"
    with contextlib.suppress(OSError):
        if failed:
            print(f"error: {stop.outcome.message}", file=sys.stderr)
        print(f"stopped after {len(trainer.history)} complete epochs; {where}", file=sys.stderr)
