"""One fine-tune round (thesis section 4.4): steer a copy of the model with the painted masks.

The round trains a deep copy of the model on the annotated images (CE + lambda x guidance,
with a replay batch of ordinary training images in every step's CE so the model does not
forget), checks the stop criteria every few steps, and returns the candidate with a report.
The caller commits (`commit_candidate`) or rejects (does nothing): the original model is never
touched, so a rejected round leaves its weights bit-identical.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from app.engine.accuracy_change import AccuracyChange
from app.engine.amp import AmpPolicy
from app.engine.batchnorm_recalibration import recalibrate_batchnorm
from app.engine.config import FinetuneConfig, TrainConfig
from app.engine.distributed import SINGLE_PROCESS, DistributedContext, shard_rows, sync_buffers
from app.engine.finetune_report import (
    STOP_BROKEN_WORSE,
    STOP_CANCELLED,
    STOP_GUIDANCE,
    STOP_NON_FINITE,
    STOP_NOTHING_ANNOTATED,
    STOP_PLATEAU,
    STOP_RED_SHARE,
    STOP_STEP_CAP,
    STOP_VAL_LOSS,
    FinetuneReport,
)
from app.engine.finite_guard import parameters_ok, snapshot, weights_problem
from app.engine.guided_step import TrainingStep
from app.engine.loops import evaluate
from app.explain.explanation_metrics import gradient_saliency, mass_share
from datasets import stack_samples
from loss import build_guidance, swap_red_regions
from models import scale_head

logger = logging.getLogger(__name__)

# on_progress(step, max_steps, guidance, val_loss)
ProgressCallback = Callable[[int, int, float, float], None]
# on_step(step, max_steps): after every optimizer step (the checks come only every few steps)
StepCallback = Callable[[int, int], None]

GUIDANCE_EVAL_IMAGES = 256  # annotated images the stop check measures the guidance loss on
CHUNK = 32  # images per forward/backward when measuring


@dataclass
class FinetuneResult:
    candidate: nn.Module  # the fine-tuned copy (on the same device as the original)
    report: FinetuneReport
    annotated_indices: List[int]  # dataset indices of the annotated images used


def guidance_value(
    model: nn.Module, guidance: nn.Module, images: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor
) -> float:
    """Mean guidance loss over the given annotated images (eval mode, no parameter update)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, images.shape[0], CHUNK):
            stop = start + CHUNK
            value = guidance(model, images[start:stop], targets[start:stop], masks[start:stop])
            total += float(value.detach()) * images[start:stop].shape[0]
            count += images[start:stop].shape[0]
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return total / max(count, 1)


def saliency_shares(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor) -> Tuple[float, float]:
    """Mean share of vanilla-gradient saliency on red and on green pixels, each in [0, 1]."""
    saliency = gradient_saliency(model, images, targets)
    red, green = mass_share(saliency, masks.cpu())
    return float(red.mean()), float(green.mean())


def paired_change(before: Optional[Dict[str, Any]], after: Optional[Dict[str, Any]]) -> Optional[AccuracyChange]:
    """The per-image change between two shortcut-broken evaluations (`evaluate(..., per_image=True)`),
    or None when either lacks the per-image outcomes."""
    if before is None or after is None or "correct" not in before or "correct" not in after:
        return None
    return AccuracyChange.between(before["correct"], after["correct"])


def broken_fell(before: Dict[str, Any], now: Dict[str, Any], by: float) -> bool:
    """Shortcut-broken accuracy fell by more than `by` and, where the per-image outcomes are
    known, by more than chance: a validation split of a few hundred images swings by a couple of
    points between checks, which must not end a round."""
    paired = paired_change(before, now)
    if paired is None:
        return now["accuracy"] < before["accuracy"] - by
    return paired.fell(by)


def commit_candidate(model: nn.Module, candidate: nn.Module) -> None:
    """Swap the candidate's weights (and buffers) into `model` in place."""
    model.load_state_dict(candidate.state_dict())


def finetune_round(
    model: nn.Module,
    *,
    train_data: Any,
    val_loader: Any,
    guidance_name: str,
    lam: float,
    config: FinetuneConfig,
    device: torch.device,
    seed: int = 0,
    on_progress: Optional[ProgressCallback] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    broken: Optional[Any] = None,
    on_step: Optional[StepCallback] = None,
    distributed: DistributedContext = SINGLE_PROCESS,
    amp: AmpPolicy = AmpPolicy(),
    test_loader: Optional[Any] = None,
    head_scale: float = TrainConfig.head_scale,
) -> FinetuneResult:
    """Run one round on every annotated image of `train_data` (an ImageFolderData with masks).

    broken: an `app.explain.shortcut_broken.BrokenValidation` (None: there is none); its accuracy before
    and after goes into the report and decides its verdict.
    test_loader: the shortcut-free test folder's loader (None: none); its accuracy before and
    after goes into the report only, never into a stop or the verdict.
    head_scale: the candidate's classifier head is scaled by this before the first step
    (`models.classifier_head`: same predictions; a model that has learnt the shortcut would
    otherwise be flattened by the penalty's first steps).
    Stop rule "plateau" (the default, with a shortcut-broken validation): train while
    shortcut-broken accuracy reaches new bests; stop after config.patience checks without one,
    when the shortcut-broken loss is >= config.val_loss_rise x the round's start, or at
    config.max_steps (also when cancelled); the candidate is the best state seen (the start when
    none beat it). Stop rule "saliency": at the first check where the share of saliency on red
    (as the chooser measures it) is <= (1 - config.red_share_drop) x before (it looks elsewhere),
    where shortcut-broken accuracy fell by more than config.broken_accuracy_drop, or where the
    shortcut-broken validation loss (else the plain one) is >= config.val_loss_rise x before (it
    is forgetting). Rule "thesis": val loss >= config.val_loss_rise x before or guidance <= L0 -
    config.guidance_drop x |L0|. Either way also at config.max_steps, on a non-finite loss (the
    candidate keeps its last checked weights) or when `should_stop()` returns True.

    Under torchrun (`distributed`) every rank draws the same steps (same seed), trains its
    rows of each step's batch through DDP, and validates rank 0's model, so all ranks take the
    same stop decision; `amp` is the steps' mixed precision.

    On a non-finite loss or weights the candidate falls back to its last state whose weights and
    validation loss were checked finite (at worst the model's own). BatchNorm statistics are
    recomputed from the training images before every evaluation of the candidate, so eval mode
    matches what was trained.
    """
    started = time.monotonic()
    generator = torch.Generator().manual_seed(seed)
    indices = train_data.annotated_indices()
    candidate = copy.deepcopy(model).to(device)
    if not indices:
        val = evaluate(model, val_loader, device=device, max_images=config.max_val_images)
        report = FinetuneReport(
            stop_reason=STOP_NOTHING_ANNOTATED,
            steps=0,
            n_annotated=0,
            val_loss_before=val["loss"],
            val_loss_after=val["loss"],
            val_accuracy_before=val["accuracy"],
            val_accuracy_after=val["accuracy"],
            guidance_before=0.0,
            guidance_after=0.0,
            red_share_before=0.0,
            red_share_after=0.0,
            green_share_before=0.0,
            green_share_after=0.0,
            seconds=time.monotonic() - started,
        )
        return FinetuneResult(candidate, report, [])

    # A fixed subset of the annotated images measures the guidance loss and the shares.
    order = torch.randperm(len(indices), generator=generator).tolist()
    measured = [indices[i] for i in order[:GUIDANCE_EVAL_IMAGES]]
    images, targets, masks, _ = stack_samples(train_data, measured, device)

    guidance_old = build_guidance(guidance_name, model)
    guidance_new = build_guidance(guidance_name, candidate)
    val_before = evaluate(model, val_loader, device=device, max_images=config.max_val_images)
    guidance_before = guidance_value(model, guidance_old, images, targets, masks)
    red_before, green_before = saliency_shares(model, images, targets, masks)
    target_guidance = guidance_before - config.guidance_drop * abs(guidance_before)
    broken_before = broken.evaluate(model, device, config.max_val_images, per_image=True) if broken is not None else None
    test_before = (
        evaluate(model, test_loader, device=device, max_images=config.max_val_images)["accuracy"]
        if test_loader is not None
        else None
    )
    rule = config.stop_rule
    if rule == "plateau" and broken_before is None:
        rule = "saliency"  # nothing to climb on: stop on the red share, as "saliency" does
    by_saliency = rule in ("saliency", "plateau")
    # The forgetting check: on the shortcut-broken validation when there is one, since a round
    # that removes the shortcut raises the plain validation loss (the split carries the shortcut).
    watch_broken = by_saliency and broken_before is not None
    if head_scale != 1.0:
        # Cooled logits: the same predictions, a higher loss. The forgetting limit is measured
        # from the candidate as the round starts, not from the confident model before it.
        scale_head(candidate, head_scale)
        start_loss = (
            broken.evaluate(candidate, device, config.max_val_images)["loss"]
            if watch_broken
            else evaluate(candidate, val_loader, device=device, max_images=config.max_val_images)["loss"]
        )
    else:
        start_loss = broken_before["loss"] if watch_broken else val_before["loss"]
    val_limit = config.val_loss_rise * start_loss
    # "plateau": the best shortcut-broken accuracy so far and the state that reached it.
    best_accuracy = broken_before["accuracy"] if broken_before is not None else -math.inf
    best_step, stale = 0, 0
    target_red = (1.0 - config.red_share_drop) * red_before
    logger.info(
        "fine-tune round: %d annotated images, L0=%.4g (target <= %.4g), val loss %.4g (limit %.4g)",
        len(indices),
        guidance_before,
        target_guidance,
        val_before["loss"],
        val_limit,
    )

    optimizer = torch.optim.Adam(candidate.parameters(), lr=config.lr)
    training_step = TrainingStep(candidate, guidance_new, lam, device=device, context=distributed, amp=amp)
    # The last candidate state checked finite (weights and validation loss): what a round that
    # breaks its weights falls back to (the loss that goes NaN comes after the step that broke them).
    last_good = snapshot(candidate)
    best_state = last_good  # "plateau": the state of best_accuracy (the round's start until beaten)
    non_finite_at = 0

    def recalibrate(step: int) -> None:
        # Steps of mostly annotated images skew the running statistics; eval mode must compute
        # what was trained before anything is evaluated (app.engine.batchnorm_recalibration).
        recalibrate_batchnorm(candidate, train_data, device=device, seed=seed + step)

    annotated_per_step = min(len(indices), CHUNK)
    stop_reason = STOP_STEP_CAP
    steps = 0
    val_loss, guidance_now = val_before["loss"], guidance_before
    for step in range(1, config.max_steps + 1):
        stop = should_stop is not None and should_stop()
        pick = torch.randperm(len(indices), generator=generator)[:annotated_per_step].tolist()
        replay = torch.randint(len(train_data), (config.replay_batch,), generator=generator).tolist()
        batch = stack_samples(train_data, [indices[i] for i in pick] + replay, device)
        has_mask = torch.zeros_like(batch.has_mask)
        has_mask[: len(pick)] = True  # replay rows contribute CE only
        batch_images, painted = batch.images, None
        if config.counterexamples:  # CE on counterexamples, the penalty on the painted images
            painted = batch_images
            batch_images = swap_red_regions(batch_images, batch.masks, has_mask, generator)
        candidate.train()
        rows = shard_rows(len(has_mask), distributed)  # every rank built the same batch
        outcome = training_step(
            batch_images[rows],
            batch.targets[rows],
            batch.masks[rows],
            has_mask[rows],
            optimizer,
            painted=None if painted is None else painted[rows],
            stop=stop,
        )
        if outcome.stopped:
            stop_reason = STOP_CANCELLED
            break
        if outcome.diverged:
            logger.warning("fine-tune loss became %s at step %d; keeping the last checked weights", outcome.loss, step)
            stop_reason, non_finite_at = STOP_NON_FINITE, step
            break
        if not parameters_ok(candidate):
            logger.warning("fine-tune step %d broke the weights; keeping the last checked weights", step)
            stop_reason, non_finite_at = STOP_NON_FINITE, step
            break
        steps = step
        if on_step is not None:
            on_step(step, config.max_steps)

        if step % config.check_every == 0 or step == config.max_steps:
            recalibrate(step)
            sync_buffers(candidate, distributed)  # the same model, hence the same decision, everywhere
            broken_now = broken.evaluate(candidate, device, config.max_val_images, per_image=True) if watch_broken else None
            val_loss = (
                broken_now["loss"]
                if broken_now is not None
                else evaluate(candidate, val_loader, device=device, max_images=config.max_val_images)["loss"]
            )
            guidance_now = guidance_value(candidate, guidance_new, images, targets, masks)
            if on_progress is not None:
                on_progress(step, config.max_steps, guidance_now, val_loss)
            if not (math.isfinite(val_loss) and math.isfinite(guidance_now)) or weights_problem(candidate):
                stop_reason, non_finite_at = STOP_NON_FINITE, step
                break
            last_good = snapshot(candidate)
            if val_loss >= val_limit:
                stop_reason = STOP_VAL_LOSS
                break
            if rule == "plateau":
                if broken_now["accuracy"] > best_accuracy:
                    best_accuracy, best_state, best_step, stale = broken_now["accuracy"], last_good, step, 0
                else:
                    stale += 1
                    if stale >= config.patience:
                        stop_reason = STOP_PLATEAU
                        break
            elif by_saliency:
                if broken_now is not None and broken_fell(broken_before, broken_now, config.broken_accuracy_drop):
                    stop_reason = STOP_BROKEN_WORSE
                    break
                if saliency_shares(candidate, images, targets, masks)[0] <= target_red:
                    stop_reason = STOP_RED_SHARE
                    break
            elif guidance_now <= target_guidance:
                stop_reason = STOP_GUIDANCE
                break

    if rule == "plateau":
        candidate.load_state_dict(best_state)  # checked finite and recalibrated when it was kept
        if stop_reason == STOP_NON_FINITE:
            logger.warning("fine-tune round: values became non-finite at step %d; keeping the best state", non_finite_at)
    elif stop_reason == STOP_NON_FINITE:
        candidate.load_state_dict(last_good)
        logger.warning(
            "fine-tune round: values became non-finite at step %d; the candidate is the last checked state", non_finite_at
        )
    else:
        recalibrate(steps)
    sync_buffers(candidate, distributed)
    candidate.eval()
    candidate.zero_grad(set_to_none=True)
    val_after = evaluate(candidate, val_loader, device=device, max_images=config.max_val_images)
    guidance_after = guidance_value(candidate, guidance_new, images, targets, masks)
    red_after, green_after = saliency_shares(candidate, images, targets, masks)
    broken_after = broken.evaluate(candidate, device, config.max_val_images, per_image=True) if broken is not None else None
    paired = paired_change(broken_before, broken_after)
    test_after = (
        evaluate(candidate, test_loader, device=device, max_images=config.max_val_images)["accuracy"]
        if test_loader is not None
        else None
    )
    report = FinetuneReport(
        stop_reason=stop_reason,
        steps=steps,
        n_annotated=len(indices),
        val_loss_before=val_before["loss"],
        val_loss_after=val_after["loss"],
        val_accuracy_before=val_before["accuracy"],
        val_accuracy_after=val_after["accuracy"],
        guidance_before=guidance_before,
        guidance_after=guidance_after,
        red_share_before=red_before,
        red_share_after=red_after,
        green_share_before=green_before,
        green_share_after=green_after,
        seconds=time.monotonic() - started,
        broken_accuracy_before=broken_before["accuracy"] if broken_before is not None else None,
        broken_accuracy_after=broken_after["accuracy"] if broken_after is not None else None,
        broken_found=broken.found if broken is not None else 0,
        broken_gained=paired.gained if paired is not None else None,
        broken_lost=paired.lost if paired is not None else None,
        broken_images=paired.n if paired is not None else 0,
        test_accuracy_before=test_before,
        test_accuracy_after=test_after,
        kept_step=best_step if rule == "plateau" else None,
    )
    logger.info("fine-tune round done: %s after %d steps; %s", report.stop_text, steps, report.verdict_text)
    return FinetuneResult(candidate, report, indices)
