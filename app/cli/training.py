"""The engine's commands: train, evaluate, finetune, demo-data.

Heavy imports (torch, the engine) happen inside the commands, so `main.py --help` stays quick.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from app.cli.common import (
    COUNTEREXAMPLES_HELP,
    EXIT_BUG,
    EXIT_OK,
    add_amp_argument,
    add_device_argument,
    add_penalty_gradient_argument,
    check_seed,
    dumps,
    prepare_out,
    write_json,
)
from app.cli.locator_options import add_locator_options, locator_options
from app.engine.config import ROUND_GUIDANCE_WHEN_UNGUIDED, STOP_RULES, FinetuneConfig, RunPaths, TrainConfig
from app.errors import UserError
from app.run import messages as msg


def _progress_printer(config: Optional[TrainConfig] = None) -> Callable[[Any, Any], None]:
    """(trainer, event) -> None: a tqdm bar per epoch and one summary line per epoch, on stderr,
    and each trust warning (`app.engine.trust_checks`) once, when it first holds."""
    from tqdm import tqdm

    from app.engine.trust_checks import DataSizes, trust_warnings

    state: Dict[str, Any] = {"bar": None, "sizes": None, "epochs": [], "warned": set()}

    def warn(event: Any) -> None:
        state["epochs"].append({"epoch": event.epoch, "train": event.train, "val": event.val})
        if state["sizes"] is None:
            return
        for warning in trust_warnings(state["epochs"], state["sizes"]):
            if warning.code not in state["warned"]:
                state["warned"].add(warning.code)
                print(f"warning: {warning.title}: {warning.detail}. {warning.advice}", file=sys.stderr)

    def close_bar() -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    def consume(trainer: Any, event: Any) -> None:
        if isinstance(event, msg.RunStarted):
            print(
                f"device: {event.device}; {event.n_train} training / {event.n_val} validation images; "
                f"classes: {', '.join(event.classes)}",
                file=sys.stderr,
            )
            for relpath, reason in event.skipped:
                print(f"skipped {relpath}: {reason}", file=sys.stderr)
            if config is not None:
                state["sizes"] = DataSizes(
                    event.n_train, event.n_val, len(event.classes), config.batch_size, config.model, tuple(event.class_counts)
                )
        elif isinstance(event, msg.BatchFinished):
            if state["bar"] is None:
                state["bar"] = tqdm(
                    total=event.batches,
                    desc=f"epoch {event.epoch}",
                    unit="batch",
                    leave=False,
                    file=sys.stderr,
                    disable=not sys.stderr.isatty(),
                )
            state["bar"].update(1)
            state["bar"].set_postfix(loss=f"{event.loss:.3f}", acc=f"{event.accuracy:.2f}")
        elif isinstance(event, msg.EpochFinished):
            close_bar()
            print(
                f"epoch {event.epoch}/{event.epochs}: train loss {event.train['loss']:.4f} "
                f"acc {event.train['accuracy']:.3f} | val loss {event.val['loss']:.4f} "
                f"acc {event.val['accuracy']:.3f} | {event.seconds:.1f}s",
                file=sys.stderr,
            )
            warn(event)
        elif isinstance(event, (msg.TrainingFinished, msg.TrainingFailed)):
            close_bar()

    return consume


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
        printer = _progress_printer(config) if context.is_main else None

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


# -------------------------------------------------------------------------- evaluate
def load_model_and_data(checkpoint_path: str, data_dir: str, masks_dir: Optional[str], device_name: str):
    """(model in eval mode on its device, ImageFolderData at the checkpoint's input size, device).

    CheckpointError when the folder's classes are not the checkpoint's.
    """
    from app.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from datasets import ImageFolderData
    from models import pick_device

    checkpoint = load_checkpoint(checkpoint_path)
    device = pick_device(device_name)
    data = ImageFolderData(data_dir, checkpoint.input_size, checkpoint.mean, checkpoint.std, masks_dir=masks_dir)
    checkpoint.check_compatible(classes=data.classes)
    model = model_from_checkpoint(checkpoint).to(device)
    model.eval()
    return model, data, device


def evaluate_checkpoint(
    checkpoint_path: str, data_dir: str, masks_dir: Optional[str] = None, device_name: str = "auto"
) -> Dict[str, Any]:
    """accuracy, loss, n_images, per_class_accuracy (+ saliency_on_red/green with masks)."""
    from torch.utils.data import DataLoader

    from app.engine.loops import evaluate
    from app.explain.explanation_metrics import gradient_saliency, mass_share
    from datasets import stack_samples

    model, data, device = load_model_and_data(checkpoint_path, data_dir, masks_dir, device_name)
    loader = DataLoader(data, batch_size=128, shuffle=False)
    result = evaluate(model, loader, device=device, classes=data.classes)
    result["n_skipped"] = len(data.skipped)
    if masks_dir is not None:
        indices = data.annotated_indices()
        reds: List[float] = []
        greens: List[float] = []
        for start in range(0, len(indices), 64):
            images, targets, masks, _ = stack_samples(data, indices[start : start + 64], device)
            red, green = mass_share(gradient_saliency(model, images, targets), masks.cpu())
            reds += red.tolist()
            greens += green.tolist()
        result["n_annotated"] = len(indices)
        result["saliency_on_red"] = sum(reds) / len(reds) if reds else None
        result["saliency_on_green"] = sum(greens) / len(greens) if greens else None
    return result


def cmd_evaluate(args: argparse.Namespace) -> int:
    from app.explain.mask_audit import check_masks_folder

    check_masks_folder(args.masks)
    result = evaluate_checkpoint(args.checkpoint, args.data, args.masks, args.device)
    print(dumps(result))
    return EXIT_OK


# -------------------------------------------------------------------------- finetune
def cmd_finetune(args: argparse.Namespace) -> int:
    from app.engine.distributed import process_group
    from app.explain.mask_audit import check_masks_folder

    # Settings first (a typo should not cost a data scan); None means "the default", 0 is a value.
    defaults = FinetuneConfig()
    config = FinetuneConfig(
        lr=defaults.lr if args.lr is None else args.lr,
        max_steps=defaults.max_steps if args.max_steps is None else args.max_steps,
        val_loss_rise=defaults.val_loss_rise if args.val_loss_rise is None else args.val_loss_rise,
        guidance_drop=defaults.guidance_drop if args.guidance_drop is None else args.guidance_drop,
        counterexamples=not args.no_counterexamples,
        stop_rule=args.stop_rule,
        patience=defaults.patience if args.patience is None else args.patience,
    )
    if args.head_scale is not None:
        TrainConfig(head_scale=args.head_scale)  # refuses a scale outside (0, 1]
    locator_options(args)  # refuses a --locator-* value out of range before the data scan
    if args.lam is not None and not (math.isfinite(args.lam) and args.lam >= 0):
        raise UserError(f"--lam must be a finite number >= 0, got {args.lam}")
    check_masks_folder(args.masks)
    if args.test:
        from datasets import class_folders

        class_folders(args.test, "test folder")  # names only: a wrong --test costs no data scan
    out = Path(args.out)
    with process_group(args.device) as context:  # one process, or one rank under torchrun
        # Rank 0 is the only writer; it locks --out before the round: a bad --out must not cost one.
        with prepare_out(out) if context.is_main else contextlib.nullcontext():
            report = _finetune(args, config, out, context)
    if report is not None:
        print(dumps(report))
        if report["verdict"] == "worse":
            print(f"warning: this round made the model worse: {report['verdict_text']}", file=sys.stderr)
    return EXIT_OK


def _finetune(args: argparse.Namespace, config: FinetuneConfig, out: Path, context: Any) -> Optional[Dict[str, Any]]:
    """Run the round; rank 0 writes the candidate and report.json and returns the report
    (other ranks return None)."""
    from torch.utils.data import DataLoader

    from app.engine.amp import AmpPolicy
    from app.engine.batchnorm_recalibration import recalibrate_batchnorm
    from app.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from app.engine.finetune import finetune_round
    from app.engine.finetune_report import STOP_NON_FINITE
    from app.explain.mask_audit import warn_about_masks
    from app.explain.shortcut_broken import BrokenValidation
    from datasets import ImageFolderData, load_splits
    from loss import DEFAULT_LAMBDAS

    checkpoint = load_checkpoint(args.checkpoint)
    stored = (
        TrainConfig.from_dict(checkpoint.train_config) if checkpoint.train_config else TrainConfig(model=checkpoint.model_name)
    )
    device = context.device(args.device)
    amp = AmpPolicy.for_device(args.amp, device)
    data = load_splits(
        args.data,
        args.val,
        input_size=checkpoint.input_size,
        mean=checkpoint.mean,
        std=checkpoint.std,
        masks_dir=args.masks,
        val_fraction=stored.val_fraction,
        seed=stored.seed,
    )
    checkpoint.check_compatible(classes=data.train.classes)
    test = None
    if args.test:  # before the model and the round: a wrong test folder is said at once
        test = ImageFolderData(
            args.test, checkpoint.input_size, checkpoint.mean, checkpoint.std, classes=data.train.classes, what="test folder"
        )
    warn_about_masks(data.train)
    model = model_from_checkpoint(checkpoint).to(device)
    # A checkpoint from before the recalibration fix may hold lagging BatchNorm statistics; the
    # round's "before" numbers must describe the model as trained (the file is not changed).
    recalibrate_batchnorm(model, data.train, device=device, seed=stored.seed)
    guidance = (stored.guidance or ROUND_GUIDANCE_WHEN_UNGUIDED) if args.guidance == "checkpoint" else args.guidance
    lam = (
        args.lam
        if args.lam is not None
        else (stored.lam if stored.lam is not None and stored.guidance == guidance else DEFAULT_LAMBDAS[guidance])
    )
    val_loader = DataLoader(data.val, batch_size=128, shuffle=False)
    locator = stored.replace(**locator_options(args)).locator_config()  # the checkpoint's, unless given
    broken = BrokenValidation.build(data.train, data.val, device=device, config=locator)
    test_loader = DataLoader(test, batch_size=128, shuffle=False) if test is not None else None

    def on_progress(step: int, max_steps: int, guidance_value: float, val_loss: float) -> None:
        if context.is_main:
            print(f"step {step}/{max_steps}: guidance {guidance_value:.4g}, val loss {val_loss:.4f}", file=sys.stderr)

    result = finetune_round(
        model,
        train_data=data.train,
        val_loader=val_loader,
        guidance_name=guidance,
        lam=lam,
        config=config,
        device=device,
        seed=stored.seed,
        on_progress=on_progress,
        distributed=context,
        amp=amp,
        broken=broken,
        test_loader=test_loader,
        head_scale=args.head_scale if args.head_scale is not None else stored.head_scale,
    )
    if result.report.n_annotated == 0:
        raise UserError(f"no image in {args.data} has a mask in {args.masks}: nothing to fine-tune on")
    if result.report.stop_reason == STOP_NON_FINITE:
        raise UserError(
            f"the fine-tune round diverged (the loss or the weights became NaN/inf or exploded after "
            f"step {result.report.steps}) with --lr {config.lr:g} and lambda {lam:g}; nothing was "
            f"written and {args.checkpoint} is unchanged: lower --lr or --lam"
        )
    if not context.is_main:
        return None  # rank 0 writes the candidate and the report
    candidate = candidate_path(out, args.checkpoint)
    _save_finetuned(candidate, result, checkpoint, config)
    if candidate.name != "model.pt":
        print(
            f"the candidate is in {candidate}: {out / 'model.pt'} is the --checkpoint it came from, left unchanged",
            file=sys.stderr,
        )
    report = {
        "candidate": str(candidate),
        **result.report.to_dict(),
        "stop_text": result.report.stop_text,
        "verdict_text": result.report.verdict_text,
        "guidance": guidance,
        "lam": lam,
    }
    write_json(out / "report.json", report)
    return report


def candidate_path(out: Path, source: str) -> Path:
    """Where a round's candidate goes: `out/model.pt`, unless that file is the round's own
    --checkpoint (`finetune --checkpoint r/model.pt --out r` once replaced the model it came
    from without a word); then `out/model.candidate.pt` beside it."""
    target = out / "model.pt"
    try:
        same = target.exists() and os.path.samefile(target, source)
    except OSError:
        same = False
    return out / "model.candidate.pt" if same else target


def _save_finetuned(candidate: Path, result: Any, checkpoint: Any, config: FinetuneConfig) -> None:
    from app.engine.checkpoint import save_checkpoint

    save_checkpoint(
        candidate,
        result.candidate,
        model_name=checkpoint.model_name,
        classes=checkpoint.classes,
        input_size=checkpoint.input_size,
        mean=checkpoint.mean,
        std=checkpoint.std,
        epoch=checkpoint.epoch,
        train_config=checkpoint.train_config,
        finetune_config=dataclasses.asdict(config),
        metrics={"val_loss": result.report.val_loss_after, "val_accuracy": result.report.val_accuracy_after},
        history=checkpoint.history,
    )


# ------------------------------------------------------------------------- demo-data
def cmd_demo_data(args: argparse.Namespace) -> int:
    from datasets import build_demo_data

    # Built beside --out and renamed when complete: a kill never leaves a partial data set.
    info = build_demo_data(args.out, seed=check_seed(args.seed), shortcut=args.shortcut, vary_size=args.vary_size)
    print(json.dumps(dataclasses.asdict(info) if dataclasses.is_dataclass(info) else str(info), indent=2, default=str))
    return EXIT_OK


def add_commands(commands: Any) -> None:
    """Register train, evaluate, finetune and demo-data on the main parser's subparsers."""
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

    evaluate = commands.add_parser("evaluate", help="accuracy (and saliency on masks) of a checkpoint, as JSON")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data", required=True, help="image folder with the checkpoint's classes")
    evaluate.add_argument("--masks", help="mask folder: adds saliency_on_red / saliency_on_green")
    add_device_argument(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    finetune = commands.add_parser("finetune", help="one fine-tune round on the masked images; writes a candidate")
    finetune.add_argument("--checkpoint", required=True)
    finetune.add_argument("--data", required=True, help="training folder the masks belong to")
    finetune.add_argument("--val", help="validation folder (default: the same split as training)")
    finetune.add_argument("--masks", required=True)
    finetune.add_argument(
        "--test", help="a shortcut-free test folder: its accuracy before and after goes into the report (only shown)"
    )
    finetune.add_argument("--out", required=True, help="writes model.pt (candidate) and report.json")
    finetune.add_argument(
        "--guidance",
        choices=GUIDANCE_NAMES + ("checkpoint",),
        default="checkpoint",
        help="guidance loss of the round (default: the checkpoint's, rrr when it had none)",
    )
    finetune.add_argument("--lam", type=float)
    finetune.add_argument("--no-counterexamples", action="store_true", help=COUNTEREXAMPLES_HELP)
    finetune.add_argument("--lr", type=float)
    finetune.add_argument("--max-steps", type=int)
    finetune.add_argument(
        "--head-scale",
        type=float,
        metavar="S",
        help="scale the candidate's classifier head by S first (default: the checkpoint's run, 0.1)",
    )
    finetune.add_argument("--patience", type=int, help="plateau rule: checks without a new best before stopping (default 8)")
    finetune.add_argument("--val-loss-rise", type=float, help="stop when val loss >= this x before (default 1.2)")
    finetune.add_argument("--guidance-drop", type=float, help="stop when guidance <= L0 - this x |L0| (default 0.5)")
    finetune.add_argument(
        "--stop-rule",
        choices=STOP_RULES,
        default=FinetuneConfig.stop_rule,
        help="plateau (default): train while shortcut-broken validation accuracy keeps rising, keep the best "
        "state; saliency: stop when saliency on red halved or the shortcut-broken validation got worse; "
        "thesis: guidance halved or val loss rose",
    )
    add_device_argument(finetune)
    add_amp_argument(finetune)
    add_locator_options(finetune)
    finetune.set_defaults(handler=cmd_finetune)

    demo = commands.add_parser("demo-data", help="write the shortcut demo data set (scikit-learn digits + decoy swatch)")
    demo.add_argument("--out", required=True)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--shortcut",
        choices=("corner", "moving", "shape"),
        default="corner",
        help="corner: a shaded swatch in a random corner (Decoy MNIST); moving: the swatch "
        "anywhere in the border; shape: a glyph per digit anywhere in the border",
    )
    demo.add_argument("--vary-size", action="store_true", help="moving: a random swatch side of 4-8 pixels per image")
    demo.set_defaults(handler=cmd_demo_data)
