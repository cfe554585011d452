"""The `finetune` command: one fine-tune round on the masked images of a checkpoint's data,
set up as the trainer sets up a run (`app.engine.run_setup`); writes the candidate and its report.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from torch.utils.data import DataLoader

from app.cli.common import (
    EXIT_OK,
    dumps,
    prepare_out,
    write_json,
)
from app.cli.locator_options import locator_options
from app.engine.amp import AmpPolicy
from app.engine.batchnorm_recalibration import recalibrate_batchnorm
from app.engine.checkpoint import load_checkpoint, save_checkpoint
from app.engine.config import FinetuneConfig, TrainConfig
from app.engine.distributed import process_group
from app.engine.finetune import finetune_round
from app.engine.finetune_report import STOP_NON_FINITE
from app.engine.run_setup import load_run_data, model_for_run
from app.errors import UserError
from app.explain.mask_audit import check_masks_folder, warn_about_masks
from app.explain.shortcut_broken import BrokenValidation
from datasets import class_folders


def cmd_finetune(args: argparse.Namespace) -> int:

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

    checkpoint = load_checkpoint(args.checkpoint)
    stored = (
        TrainConfig.from_dict(checkpoint.train_config) if checkpoint.train_config else TrainConfig(model=checkpoint.model_name)
    )
    device = context.device(args.device)
    amp = AmpPolicy.for_device(args.amp, device)
    # The checkpoint's own run settings (split, seed) set the data up as its trainer did.
    run_data = load_run_data(
        stored.replace(model=checkpoint.model_name),
        checkpoint,
        train_dir=args.data,
        val_dir=args.val,
        masks_dir=args.masks,
        test_dir=args.test,
    )
    data, test = run_data.splits, run_data.test
    warn_about_masks(data.train)
    model = model_for_run(stored, checkpoint, len(data.train.classes), device)
    # A checkpoint from before the recalibration fix may hold lagging BatchNorm statistics; the
    # round's "before" numbers must describe the model as trained (the file is not changed).
    recalibrate_batchnorm(model, data.train, device=device, seed=stored.seed)
    guidance = stored.round_guidance if args.guidance == "checkpoint" else args.guidance
    lam = args.lam if args.lam is not None else stored.round_lambda(guidance)
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
