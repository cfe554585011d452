"""The command line: the same engine as the desktop app, without a window.

`python main.py --help` lists the commands. User mistakes print one `error:` line and exit 2;
a bug prints its traceback and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import logging
import math
import os
import queue
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import messages as msg
from .config import FinetuneConfig, RunPaths, TrainConfig
from .errors import UserError, user_error_types

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_BUG, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
# File-system failures that are the machine's or the user's to fix (disk full, read-only or
# forbidden folder, a path that is a file or too long), printed as one line, not a traceback.
USER_OS_ERRORS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG,
    errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.ELOOP, errno.EMFILE,
})


def _write_json(path: Path, payload: Any) -> None:
    from .atomic_files import write_json_atomic

    write_json_atomic(path, payload)


def _dumps(payload: Any) -> str:
    """JSON for stdout: NaN/inf become null (json.dumps would print the invalid token NaN)."""
    from .finite_guard import finite_or_none

    return json.dumps(finite_or_none(payload), indent=2, allow_nan=False)


def _prepare_out(out: Path) -> Any:
    """Create the output folder, lock it against a second writer and clear temp files of a
    killed run; returns the lock (release it when done). UserError when it cannot be used."""
    from .atomic_files import remove_stale_temp_files
    from .run_lock import acquire_folder_lock

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder (it is created when missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the --out folder {out}: {error.strerror or error}") from error
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"cannot write in the --out folder {out}: permission denied or read-only")
    lock = acquire_folder_lock(out)
    remove_stale_temp_files(out)
    return lock


def _guidance_arg(value: str) -> Optional[str]:
    return None if value == "none" else value


# ----------------------------------------------------------------------------- train
def _progress_consumer(verbose: bool) -> Callable[[Any], None]:
    """Turn trainer events into a tqdm bar per epoch and one summary line per epoch."""
    from tqdm import tqdm

    state: Dict[str, Any] = {"bar": None}

    def close_bar() -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    def consume(event: Any) -> None:
        if isinstance(event, msg.RunStarted):
            print(f"device: {event.device}; {event.n_train} training / {event.n_val} validation images; "
                  f"classes: {', '.join(event.classes)}", file=sys.stderr)
            for relpath, reason in event.skipped:
                print(f"skipped {relpath}: {reason}", file=sys.stderr)
        elif isinstance(event, msg.BatchFinished):
            if state["bar"] is None:
                state["bar"] = tqdm(total=event.batches, desc=f"epoch {event.epoch}", unit="batch", leave=False,
                                    file=sys.stderr, disable=not sys.stderr.isatty())
            state["bar"].update(1)
            state["bar"].set_postfix(loss=f"{event.loss:.3f}", acc=f"{event.accuracy:.2f}")
        elif isinstance(event, msg.EpochFinished):
            close_bar()
            print(f"epoch {event.epoch}/{event.epochs}: train loss {event.train['loss']:.4f} "
                  f"acc {event.train['accuracy']:.3f} | val loss {event.val['loss']:.4f} "
                  f"acc {event.val['accuracy']:.3f} | {event.seconds:.1f}s", file=sys.stderr)
        elif isinstance(event, (msg.TrainingFinished, msg.TrainingFailed)):
            close_bar()

    return consume


def _run_trainer(trainer_factory: Callable[[Callable[[Any], None]], Any], verbose: bool, quiet: bool = False) -> Any:
    """Run a trainer in a thread, feed its events to the terminal; Ctrl+C stops it cleanly.
    `quiet` (ranks other than 0 under torchrun): print nothing."""
    events: "queue.Queue[Any]" = queue.Queue()
    trainer = trainer_factory(events.put)
    consume = _progress_consumer(verbose) if not quiet else (lambda event: None)
    thread = trainer.start()
    outcome = None
    try:
        while outcome is None:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if not thread.is_alive() and events.empty():
                    break
                continue
            consume(event)
            if isinstance(event, (msg.TrainingFinished, msg.TrainingFailed)):
                outcome = event
    except KeyboardInterrupt:
        print("\nstopping after the current batch (the checkpoint is saved)...", file=sys.stderr)
        trainer.stop()
        while thread.is_alive():  # a second signal (torchrun's SIGTERM after Ctrl+C) must not cut the save short
            try:
                thread.join()
            except KeyboardInterrupt:
                pass
        raise
    thread.join()
    return trainer, outcome


COUNTEREXAMPLES_HELP = (
    "penalty only: do not swap the red pixels of masked images with other images' pixels "
    "(by default they are swapped, so what is painted red stops predicting the label)"
)


def cmd_train(args: argparse.Namespace) -> int:
    from .distributed import process_group

    with process_group(args.device) as context:  # one process, or one rank under torchrun
        return _train(args, context)


def _train(args: argparse.Namespace, context: Any) -> int:
    from .trainer import Trainer

    model = args.model
    if model is None:
        model = "small_cnn"
        if args.init:
            from .checkpoint import load_checkpoint

            model = load_checkpoint(args.init).model_name
    from .mask_audit import check_masks_folder

    check_masks_folder(args.masks)
    config = TrainConfig(
        model=model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        guidance=_guidance_arg(args.guidance), lam=args.lam, seed=args.seed, device=args.device,
        num_workers=args.workers, input_size=args.input_size, weights_path=args.weights,
        val_fraction=args.val_fraction, counterexamples=not args.no_counterexamples,
        oversample_annotated=args.oversample, amp=args.amp, cache_images_gb=args.cache_images,
    )
    out = Path(args.out)
    paths = RunPaths(
        train_dir=args.data, val_dir=args.val, masks_dir=args.masks,
        init_checkpoint=args.init, checkpoint_out=str(out / "model.pt"), test_dir=args.test,
    )
    # Rank 0 is the only writer: it alone creates and locks the run folder.
    with _prepare_out(out) if context.is_main else contextlib.nullcontext():
        trainer, outcome = _run_trainer(
            lambda emit: Trainer(config, FinetuneConfig(), paths, emit=emit, distributed=context),
            args.verbose, quiet=not context.is_main,
        )
        if isinstance(outcome, msg.TrainingFailed):
            rank = f"rank {context.rank}: " if context.enabled else ""
            if outcome.user_error:
                raise UserError(rank + outcome.message)
            print(rank + outcome.details, file=sys.stderr)
            return EXIT_BUG
        if not context.is_main:
            return EXIT_OK  # rank 0 writes the metrics and prints the summary
        _write_json(out / "metrics.json", {"config": dataclasses.asdict(config), "history": trainer.history})
    print(_dumps({"checkpoint": str(out / "model.pt"), "epochs": trainer.epoch,
                  "final": trainer.history[-1] if trainer.history else None}))
    return EXIT_OK


# -------------------------------------------------------------------------- evaluate
def load_model_and_data(checkpoint_path: str, data_dir: str, masks_dir: Optional[str], device_name: str):
    """(model in eval mode on its device, ImageFolderData at the checkpoint's input size, device).

    CheckpointError when the folder's classes are not the checkpoint's.
    """
    from datasets import ImageFolderData
    from models import pick_device

    from .checkpoint import load_checkpoint, model_from_checkpoint

    checkpoint = load_checkpoint(checkpoint_path)
    device = pick_device(device_name)
    data = ImageFolderData(data_dir, checkpoint.input_size, checkpoint.mean, checkpoint.std, masks_dir=masks_dir)
    checkpoint.check_compatible(classes=data.classes)
    model = model_from_checkpoint(checkpoint).to(device)
    model.eval()
    return model, data, device


def evaluate_checkpoint(checkpoint_path: str, data_dir: str, masks_dir: Optional[str] = None, device_name: str = "auto") -> Dict[str, Any]:
    """accuracy, loss, n_images, per_class_accuracy (+ saliency_on_red/green with masks)."""
    from torch.utils.data import DataLoader

    from .explanation_metrics import gradient_saliency, mass_share
    from .finetune import stack_samples
    from .loops import evaluate

    model, data, device = load_model_and_data(checkpoint_path, data_dir, masks_dir, device_name)
    loader = DataLoader(data, batch_size=128, shuffle=False)
    result = evaluate(model, loader, device=device, classes=data.classes)
    result["n_skipped"] = len(data.skipped)
    if masks_dir is not None:
        indices = data.annotated_indices()
        reds: List[float] = []
        greens: List[float] = []
        for start in range(0, len(indices), 64):
            images, targets, masks, _ = stack_samples(data, indices[start:start + 64], device)
            red, green = mass_share(gradient_saliency(model, images, targets), masks.cpu())
            reds += red.tolist()
            greens += green.tolist()
        result["n_annotated"] = len(indices)
        result["saliency_on_red"] = sum(reds) / len(reds) if reds else None
        result["saliency_on_green"] = sum(greens) / len(greens) if greens else None
    return result


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .mask_audit import check_masks_folder

    check_masks_folder(args.masks)
    result = evaluate_checkpoint(args.checkpoint, args.data, args.masks, args.device)
    print(_dumps(result))
    return EXIT_OK


# -------------------------------------------------------------------------- finetune
def cmd_finetune(args: argparse.Namespace) -> int:
    from .distributed import process_group
    from .mask_audit import check_masks_folder

    # Settings first (a typo should not cost a data scan); None means "the default", 0 is a value.
    defaults = FinetuneConfig()
    config = FinetuneConfig(
        lr=defaults.lr if args.lr is None else args.lr,
        max_steps=defaults.max_steps if args.max_steps is None else args.max_steps,
        val_loss_rise=defaults.val_loss_rise if args.val_loss_rise is None else args.val_loss_rise,
        guidance_drop=defaults.guidance_drop if args.guidance_drop is None else args.guidance_drop,
        counterexamples=not args.no_counterexamples, stop_rule=args.stop_rule,
    )
    if args.lam is not None and not (math.isfinite(args.lam) and args.lam >= 0):
        raise UserError(f"--lam must be a finite number >= 0, got {args.lam}")
    check_masks_folder(args.masks)
    out = Path(args.out)
    with process_group(args.device) as context:  # one process, or one rank under torchrun
        # Rank 0 is the only writer; it locks --out before the round: a bad --out must not cost one.
        with _prepare_out(out) if context.is_main else contextlib.nullcontext():
            report = _finetune(args, config, out, context)
    if report is not None:
        print(_dumps(report))
        if report["verdict"] == "worse":
            print(f"warning: this round made the model worse: {report['verdict_text']}", file=sys.stderr)
    return EXIT_OK


def _finetune(args: argparse.Namespace, config: FinetuneConfig, out: Path, context: Any) -> Optional[Dict[str, Any]]:
    """Run the round; rank 0 writes the candidate and report.json and returns the report
    (other ranks return None)."""
    from torch.utils.data import DataLoader

    from datasets import load_splits
    from loss import DEFAULT_LAMBDAS

    from .amp import AmpPolicy
    from .batchnorm_recalibration import recalibrate_batchnorm
    from .checkpoint import load_checkpoint, model_from_checkpoint
    from .finetune import finetune_round
    from .finetune_report import STOP_NON_FINITE
    from .mask_audit import warn_about_masks
    from .shortcut_broken import BrokenValidation

    checkpoint = load_checkpoint(args.checkpoint)
    stored = TrainConfig.from_dict(checkpoint.train_config) if checkpoint.train_config else TrainConfig(model=checkpoint.model_name)
    device = context.device(args.device)
    amp = AmpPolicy.for_device(args.amp, device)
    data = load_splits(
        args.data, args.val, input_size=checkpoint.input_size, mean=checkpoint.mean, std=checkpoint.std,
        masks_dir=args.masks, val_fraction=stored.val_fraction, seed=stored.seed,
    )
    checkpoint.check_compatible(classes=data.train.classes)
    warn_about_masks(data.train)
    model = model_from_checkpoint(checkpoint).to(device)
    # A checkpoint from before the recalibration fix may hold lagging BatchNorm statistics; the
    # round's "before" numbers must describe the model as trained (the file is not changed).
    recalibrate_batchnorm(model, data.train, device=device, seed=stored.seed)
    guidance = _guidance_arg(args.guidance) or stored.guidance or "rrr"
    lam = args.lam if args.lam is not None else (stored.lam if stored.lam is not None and stored.guidance == guidance else DEFAULT_LAMBDAS[guidance])
    val_loader = DataLoader(data.val, batch_size=128, shuffle=False)
    broken = BrokenValidation.build(data.train, data.val, device=device)

    def on_progress(step: int, max_steps: int, guidance_value: float, val_loss: float) -> None:
        if context.is_main:
            print(f"step {step}/{max_steps}: guidance {guidance_value:.4g}, val loss {val_loss:.4f}", file=sys.stderr)

    result = finetune_round(
        model, train_data=data.train, val_loader=val_loader, guidance_name=guidance, lam=lam,
        config=config, device=device, seed=stored.seed, on_progress=on_progress, distributed=context, amp=amp,
        broken=broken,
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
    _save_finetuned(out, result, checkpoint, config)
    report = {**result.report.to_dict(), "stop_text": result.report.stop_text,
              "verdict_text": result.report.verdict_text, "guidance": guidance, "lam": lam}
    _write_json(out / "report.json", report)
    return report


def _save_finetuned(out: Path, result: Any, checkpoint: Any, config: FinetuneConfig) -> None:
    from .checkpoint import save_checkpoint

    save_checkpoint(
        out / "model.pt", result.candidate, model_name=checkpoint.model_name, classes=checkpoint.classes,
        input_size=checkpoint.input_size, mean=checkpoint.mean, std=checkpoint.std, epoch=checkpoint.epoch,
        train_config=checkpoint.train_config, finetune_config=dataclasses.asdict(config),
        metrics={"val_loss": result.report.val_loss_after, "val_accuracy": result.report.val_accuracy_after},
        history=checkpoint.history,
    )


# ------------------------------------------------------------------------- demo-data
def cmd_demo_data(args: argparse.Namespace) -> int:
    from datasets import make_demo_data

    info = make_demo_data(args.out, seed=args.seed, shortcut=args.shortcut, vary_size=args.vary_size)
    print(json.dumps(dataclasses.asdict(info) if dataclasses.is_dataclass(info) else str(info), indent=2, default=str))
    return EXIT_OK


# ------------------------------------------------------------------------------- app
def cmd_app(args: argparse.Namespace) -> int:
    try:
        from ui.app import run_app
    except ImportError as error:  # tkinter missing from this Python
        raise UserError(f"the desktop app needs Tk ({error}); install python3-tk or use the CLI commands") from error
    import tkinter

    try:
        return run_app(data_dir=args.data, session_dir=args.session, demo_shortcut=args.demo)
    except tkinter.TclError as error:
        if "display" in str(error).lower():
            raise UserError(
                f"the desktop app needs a screen ({error}); on a headless machine use the "
                "command line instead: main.py --help"
            ) from error
        raise


# ---------------------------------------------------------------------------- parser
def _add_common_training(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")


def _add_amp(parser: argparse.ArgumentParser) -> None:
    from .amp import AMP_MODES

    parser.add_argument("--amp", choices=AMP_MODES, default="off",
                        help="mixed precision: bf16 (GPU or CPU), fp16 (GPU, with loss scaling) or off (float32)")


def build_parser() -> argparse.ArgumentParser:
    from loss import GUIDANCE_NAMES
    from models import MODEL_NAMES

    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Steer an image classifier's attention with painted masks. Without a command, "
                    "opens the desktop app on the built-in demo data.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log engine details to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    app = commands.add_parser("app", help="open the desktop app (the default)")
    app.add_argument("--data", help="image folder root/<class>/<image> (default: the built-in demo data)")
    app.add_argument("--session", help="reopen this session folder")
    app.add_argument("--demo", choices=("corner", "moving", "shape"), default="corner",
                     help="the built-in demo a blank data folder means: corner (a swatch in a corner), moving "
                          "(the swatch anywhere in the border, varying size) or shape (a glyph per digit)")
    app.set_defaults(handler=cmd_app)

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
    train.add_argument("--oversample", type=float, default=TrainConfig.oversample_annotated, metavar="X",
                       help="draw each masked image X times as often as an unmasked one (default "
                            "%(default)g; 1 = uniform), so a few masks steer every step")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    train.add_argument("--weights", help="local file with pretrained weights (torchvision state_dict)")
    train.add_argument("--init", help="continue from this checkpoint")
    train.add_argument("--workers", type=int, default=0, help="data loading worker processes (per process under torchrun)")
    train.add_argument("--cache-images", type=float, default=0.0, metavar="GB",
                       help="keep decoded, resized images in RAM up to GB gigabytes (per process), so later "
                            "epochs skip decoding (150 KB per image at 224 px)")
    train.add_argument("--out", required=True, help="run folder: writes model.pt and metrics.json")
    train.add_argument("--test", help="a shortcut-free test folder, evaluated after every epoch (test_accuracy)")
    _add_common_training(train)
    _add_amp(train)
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="accuracy (and saliency on masks) of a checkpoint, as JSON")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data", required=True, help="image folder with the checkpoint's classes")
    evaluate.add_argument("--masks", help="mask folder: adds saliency_on_red / saliency_on_green")
    _add_common_training(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    finetune = commands.add_parser("finetune", help="one fine-tune round on the masked images; writes a candidate")
    finetune.add_argument("--checkpoint", required=True)
    finetune.add_argument("--data", required=True, help="training folder the masks belong to")
    finetune.add_argument("--val", help="validation folder (default: the same split as training)")
    finetune.add_argument("--masks", required=True)
    finetune.add_argument("--out", required=True, help="writes model.pt (candidate) and report.json")
    finetune.add_argument("--guidance", choices=GUIDANCE_NAMES + ("none",), default="none", help="default: the checkpoint's")
    finetune.add_argument("--lam", type=float)
    finetune.add_argument("--no-counterexamples", action="store_true", help=COUNTEREXAMPLES_HELP)
    finetune.add_argument("--lr", type=float)
    finetune.add_argument("--max-steps", type=int)
    finetune.add_argument("--val-loss-rise", type=float, help="stop when val loss >= this x before (default 1.2)")
    finetune.add_argument("--guidance-drop", type=float, help="stop when guidance <= L0 - this x |L0| (default 0.5)")
    finetune.add_argument("--stop-rule", choices=("saliency", "thesis"), default="saliency",
                          help="saliency (default): stop when saliency on red halved or the shortcut-broken validation "
                               "got worse; thesis: guidance halved or val loss rose")
    _add_common_training(finetune)
    _add_amp(finetune)
    finetune.set_defaults(handler=cmd_finetune)

    demo = commands.add_parser("demo-data", help="write the shortcut demo data set (scikit-learn digits + decoy swatch)")
    demo.add_argument("--out", required=True)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--shortcut", choices=("corner", "moving", "shape"), default="corner",
                      help="corner: a shaded swatch in a random corner (Decoy MNIST); moving: the swatch "
                           "anywhere in the border; shape: a glyph per digit anywhere in the border")
    demo.add_argument("--vary-size", action="store_true", help="moving: a random swatch side of 4-8 pixels per image")
    demo.set_defaults(handler=cmd_demo_data)

    from .cli_workflow import add_commands

    add_commands(commands)  # select, propagate
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        args = parser.parse_args(["app"] + list(argv or []))
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `main.py evaluate ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
    except MemoryError:
        print("error: out of memory; use a smaller --batch-size, --input-size or model", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as error:
        if error.errno not in USER_OS_ERRORS:
            raise
        where = f" {error.filename}" if error.filename else ""
        print(f"error: cannot read or write{where}: {error.strerror or error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:  # noqa: BLE001 -- user mistakes get one line, bugs a traceback
        if isinstance(error, user_error_types()):
            print(f"error: {_one_line(error)}", file=sys.stderr)
            return EXIT_USER_ERROR
        raise


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
