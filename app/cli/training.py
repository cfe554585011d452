"""The engine's commands: train here; evaluate, finetune and demo-data in modules of their own
(`evaluate_command`, `finetune_command`, `demo_command`), registered by `add_commands`.

Heavy imports (torch, the engine) happen inside the commands, so `main.py --help` stays quick.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any, List

from app.cli.common import (
    COUNTEREXAMPLES_HELP,
    EXIT_BUG,
    EXIT_OK,
    add_amp_argument,
    add_device_argument,
    add_penalty_gradient_argument,
    dumps,
    prepare_out,
    write_json,
)
from app.cli.demo_command import add_demo_command
from app.cli.evaluate_command import add_evaluate_command, load_model_and_data
from app.cli.finetune_command import add_finetune_command
from app.cli.locator_options import add_locator_options, locator_options
from app.cli.progress_printer import progress_printer
from app.engine.config import FinetuneConfig, RunPaths, TrainConfig
from app.errors import UserError
from app.run import messages as msg

__all__ = ["add_commands", "cmd_train", "guidance_verdict", "load_model_and_data"]  # load_model_and_data: for workflow


def cmd_train(args: argparse.Namespace) -> int:
    from app.engine.distributed import process_group

    with process_group(args.device) as context:  # one process, or one rank under torchrun
        return _train(args, context)


def _train(args: argparse.Namespace, context: Any) -> int:
    from app.run.driver import RunInterrupted, drive_trainer
    from app.run.trainer import Trainer

    model = args.model or "small_cnn"
    if args.init:
        from app.engine.checkpoint import load_checkpoint

        init = load_checkpoint(args.init)
        model = args.model or init.model_name
        if args.input_size is not None and args.input_size != init.input_size:  # it trained at 32 px without a word
            raise UserError(
                f"--input-size {args.input_size} is not the --init checkpoint's {init.input_size} px: a continued "
                f"model keeps its input size; leave --input-size out (or train a new model without --init)"
            )
    from app.explain.mask_audit import check_masks_folder

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
    from app.engine.finetune_report import BROKEN_NOISE

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


def add_commands(commands: Any) -> None:
    """Register train, evaluate, finetune and demo-data on the main parser's subparsers."""
    add_train_command(commands)
    add_evaluate_command(commands)
    add_finetune_command(commands)
    add_demo_command(commands)


def add_train_command(commands: Any) -> None:
    """Register `train` on the main parser's subparsers."""
    from loss import GUIDANCE_NAMES
    from models import MODEL_NAMES

    train = commands.add_parser("train", help="train a model, optionally guided by masks")
    train.add_argument("--data", required=True, help="training image folder root/<class>/<image>")
    train.add_argument("--val", help="validation folder (default: a seeded stratified split of --data)")
    train.add_argument("--val-fraction", type=float, default=0.2, help="held-out share when --val is not given")
    train.add_argument("--masks", help="mask folder (<masks>/<relpath>.png, red = discourage, green = encourage)")
    train.add_argument("--model", choices=MODEL_NAMES, help="architecture (default small_cnn, or the --init checkpoint's)")
    train.add_argument("--epochs", type=int, default=10, help="epochs to train (more epochs after --init)")
    train.add_argument("--guidance", choices=GUIDANCE_NAMES + ("none",), default="rrr", help="guidance loss on masked images")
    train.add_argument("--lam", type=float, help="weight of the guidance loss (default: per loss)")
    train.add_argument("--no-counterexamples", action="store_true", help=COUNTEREXAMPLES_HELP)
    train.add_argument(
        "--oversample",
        type=float,
        default=TrainConfig.oversample_annotated,
        metavar="X",
        help="draw each masked image X times as often as an unmasked one (default "
        "%(default)g; 1 = uniform), so a few masks steer every step",
    )
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    train.add_argument("--weights", help="local file with pretrained weights (torchvision state_dict)")
    train.add_argument("--init", help="continue from this checkpoint")
    train.add_argument(
        "--head-scale",
        type=float,
        default=TrainConfig.head_scale,
        metavar="S",
        help="with --init and --masks: scale the classifier head by S first (default %(default)g; 1 = off): the "
        "same predictions, but a model that learnt the shortcut is not flattened by the penalty",
    )
    train.add_argument("--workers", type=int, default=0, help="data loading worker processes (per process under torchrun)")
    train.add_argument(
        "--cache-images",
        type=float,
        default=0.0,
        metavar="GB",
        help="keep decoded, resized images in RAM up to GB gigabytes (per process), so later "
        "epochs skip decoding (150 KB per image at 224 px)",
    )
    train.add_argument("--out", required=True, help="run folder: writes model.pt and metrics.json")
    train.add_argument("--test", help="a shortcut-free test folder, evaluated after every epoch (test_accuracy)")
    add_device_argument(train)
    add_amp_argument(train)
    add_penalty_gradient_argument(train)
    add_locator_options(train)
    train.set_defaults(handler=cmd_train)
