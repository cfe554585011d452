"""One fine-tune round (thesis section 4.4): steer a copy of the model with the painted masks.

The round trains a deep copy of the model on the annotated images (CE + lambda x guidance,
with a replay batch of ordinary training images in every step's CE so the model does not
forget), checks the stop rule every few steps (`app.engine.round_stop_rule`), and returns the
candidate with a report of the model and the candidate measured the same five ways
(`app.engine.round_measures`). The caller commits (`commit_candidate`) or rejects (does
nothing): the original model is never touched, so a rejected round leaves its weights
bit-identical.
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

from app.engine.amp import AmpPolicy
from app.engine.batchnorm_recalibration import recalibrate_batchnorm
from app.engine.config import FinetuneConfig, TrainConfig
from app.engine.distributed import SINGLE_PROCESS, DistributedContext, shard_rows, sync_buffers
from app.engine.finetune_report import STOP_CANCELLED, STOP_NON_FINITE, STOP_NOTHING_ANNOTATED, STOP_STEP_CAP, FinetuneReport
from app.engine.finite_guard import parameters_ok, snapshot, weights_problem
from app.engine.guided_step import TrainingStep
from app.engine.loops import evaluate
from app.engine.round_measures import CHUNK, Measures, Probe, measure, round_report
from app.engine.round_stop_rule import RoundStopRule
from datasets import stack_samples
from loss import build_guidance, swap_red_regions
from models import scale_head

logger = logging.getLogger(__name__)

# on_progress(step, max_steps, guidance, val_loss)
ProgressCallback = Callable[[int, int, float, float], None]
# on_step(step, max_steps): after every optimizer step (the checks come only every few steps)
StepCallback = Callable[[int, int], None]


@dataclass
class FinetuneResult:
    candidate: nn.Module  # the fine-tuned copy (on the same device as the original)
    report: FinetuneReport
    annotated_indices: List[int]  # dataset indices of the annotated images used


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
        return FinetuneResult(candidate, _nothing_annotated(model, val_loader, config, device, started), [])

    probe = Probe.draw(train_data, indices, generator, device)
    guidance_new = build_guidance(guidance_name, candidate)
    where = dict(val_loader=val_loader, broken=broken, test_loader=test_loader, device=device, max_images=config.max_val_images)
    before = measure(model, build_guidance(guidance_name, model), probe, **where)
    rule = RoundStopRule(config, before)
    steps = CandidateSteps(candidate, train_data, indices, rule, probe, guidance_new, val_loader, broken, config, device, seed)
    rule.start(steps.start_loss(before, head_scale), snapshot(candidate))
    logger.info(
        "fine-tune round: %d annotated images, L0=%.4g (target <= %.4g), val loss %.4g (limit %.4g)",
        len(indices),
        before.guidance,
        rule.target_guidance,
        before.val["loss"],
        rule.val_limit,
    )
    training_step = TrainingStep(candidate, guidance_new, lam, device=device, context=distributed, amp=amp)
    stop_reason = steps.run(training_step, generator, distributed, should_stop, on_step, on_progress)
    steps.settle(stop_reason, distributed)
    after = measure(candidate, guidance_new, probe, **where)
    report = round_report(
        before,
        after,
        stop_reason=stop_reason,
        steps=steps.steps,
        n_annotated=len(indices),
        seconds=time.monotonic() - started,
        broken_found=broken.found if broken is not None else 0,
        kept_step=rule.kept_step,
    )
    logger.info("fine-tune round done: %s after %d steps; %s", report.stop_text, steps.steps, report.verdict_text)
    return FinetuneResult(candidate, report, indices)


def _nothing_annotated(
    model: nn.Module, val_loader: Any, config: FinetuneConfig, device: torch.device, started: float
) -> FinetuneReport:
    """The report of a round with no annotated image: nothing trained, the validation as it is."""
    val = evaluate(model, val_loader, device=device, max_images=config.max_val_images)
    nothing = Measures(val, 0.0, 0.0, 0.0, None, None)
    return round_report(
        nothing,
        nothing,
        stop_reason=STOP_NOTHING_ANNOTATED,
        steps=0,
        n_annotated=0,
        seconds=time.monotonic() - started,
        broken_found=0,
        kept_step=None,
    )


class CandidateSteps:
    """The optimiser steps of one round on its candidate, with the stop checks between them and
    the fall-back to a checked state when values become non-finite."""

    def __init__(
        self,
        candidate: nn.Module,
        train_data: Any,
        indices: List[int],
        rule: RoundStopRule,
        probe: Probe,
        guidance: nn.Module,
        val_loader: Any,
        broken: Optional[Any],
        config: FinetuneConfig,
        device: torch.device,
        seed: int,
    ):
        self.candidate, self.train_data, self.indices, self.rule, self.probe = candidate, train_data, indices, rule, probe
        self.guidance, self.val_loader, self.broken = guidance, val_loader, broken
        self.config, self.device, self.seed = config, device, seed
        self.steps = 0  # optimiser steps taken (and kept)
        self.non_finite_at = 0
        # The last candidate state checked finite (weights and validation loss): what a round that
        # breaks its weights falls back to (the loss that goes NaN comes after the step that broke them).
        self.last_good: Dict[str, Any] = {}

    def watched_loss(self, per_image: bool = True) -> Tuple[float, Optional[Dict[str, Any]]]:
        """(the loss the forgetting limit watches, the shortcut-broken evaluation when watched)."""
        max_images = self.config.max_val_images
        if self.rule.watch_broken:
            broken_now = self.broken.evaluate(self.candidate, self.device, max_images, per_image=per_image)
            return broken_now["loss"], broken_now
        return evaluate(self.candidate, self.val_loader, device=self.device, max_images=max_images)["loss"], None

    def start_loss(self, before: Measures, head_scale: float) -> float:
        """The watched loss as the round starts; cools the candidate's head first (`head_scale`)."""
        if head_scale == 1.0:
            return before.broken["loss"] if self.rule.watch_broken else before.val["loss"]
        # Cooled logits: the same predictions, a higher loss. The forgetting limit is measured
        # from the candidate as the round starts, not from the confident model before it.
        scale_head(self.candidate, head_scale)
        return self.watched_loss(per_image=False)[0]

    def recalibrate(self, step: int) -> None:
        # Steps of mostly annotated images skew the running statistics; eval mode must compute
        # what was trained before anything is evaluated (app.engine.batchnorm_recalibration).
        recalibrate_batchnorm(self.candidate, self.train_data, device=self.device, seed=self.seed + step)

    def batch(self, generator: torch.Generator) -> Tuple[torch.Tensor, ...]:
        """One step's rows: up to CHUNK annotated images, then `replay_batch` random training
        images (CE only); (images, targets, masks, has_mask, painted), `painted` the images before
        counterexamples (None without them)."""
        config, indices = self.config, self.indices
        pick = torch.randperm(len(indices), generator=generator)[: min(len(indices), CHUNK)].tolist()
        replay = torch.randint(len(self.train_data), (config.replay_batch,), generator=generator).tolist()
        batch = stack_samples(self.train_data, [indices[i] for i in pick] + replay, self.device)
        has_mask = torch.zeros_like(batch.has_mask)
        has_mask[: len(pick)] = True  # replay rows contribute CE only
        images, painted = batch.images, None
        if config.counterexamples:  # CE on counterexamples, the penalty on the painted images
            painted = images
            images = swap_red_regions(images, batch.masks, has_mask, generator)
        return images, batch.targets, batch.masks, has_mask, painted

    def run(
        self,
        training_step: TrainingStep,
        generator: torch.Generator,
        distributed: DistributedContext,
        should_stop: Optional[Callable[[], bool]],
        on_step: Optional[StepCallback],
        on_progress: Optional[ProgressCallback],
    ) -> str:
        """Step until the rule, the step cap, a non-finite value or `should_stop` ends the round;
        returns the STOP_* reason."""
        config, candidate = self.config, self.candidate
        self.last_good = self.rule.best_state
        optimizer = torch.optim.Adam(candidate.parameters(), lr=config.lr)
        for step in range(1, config.max_steps + 1):
            stop = should_stop is not None and should_stop()
            images, targets, masks, has_mask, painted = self.batch(generator)
            candidate.train()
            rows = shard_rows(len(has_mask), distributed)  # every rank built the same batch
            outcome = training_step(
                images[rows],
                targets[rows],
                masks[rows],
                has_mask[rows],
                optimizer,
                painted=None if painted is None else painted[rows],
                stop=stop,
            )
            if outcome.stopped:
                return STOP_CANCELLED
            if outcome.diverged:
                logger.warning("fine-tune loss became %s at step %d; keeping the last checked weights", outcome.loss, step)
                self.non_finite_at = step
                return STOP_NON_FINITE
            if not parameters_ok(candidate):
                logger.warning("fine-tune step %d broke the weights; keeping the last checked weights", step)
                self.non_finite_at = step
                return STOP_NON_FINITE
            self.steps = step
            if on_step is not None:
                on_step(step, config.max_steps)
            if step % config.check_every == 0 or step == config.max_steps:
                reason = self.check(step, distributed, on_progress)
                if reason is not None:
                    return reason
        return STOP_STEP_CAP

    def check(self, step: int, distributed: DistributedContext, on_progress: Optional[ProgressCallback]) -> Optional[str]:
        """The stop check after `step`: measure, report progress, ask the rule."""
        candidate = self.candidate
        self.recalibrate(step)
        sync_buffers(candidate, distributed)  # the same model, hence the same decision, everywhere
        val_loss, broken_now = self.watched_loss()
        guidance_now = self.probe.guidance(candidate, self.guidance)
        if on_progress is not None:
            on_progress(step, self.config.max_steps, guidance_now, val_loss)
        if not (math.isfinite(val_loss) and math.isfinite(guidance_now)) or weights_problem(candidate):
            self.non_finite_at = step
            return STOP_NON_FINITE
        self.last_good = snapshot(candidate)
        return self.rule.check(step, val_loss, guidance_now, broken_now, lambda: self.probe.shares(candidate)[0], self.last_good)

    def settle(self, stop_reason: str, distributed: DistributedContext) -> None:
        """Leave the candidate in its kept state, in eval mode: the best ("plateau"), the last
        checked one after a non-finite value, else the last (recalibrated)."""
        candidate = self.candidate
        if self.rule.keeps_best:
            candidate.load_state_dict(self.rule.best_state)  # checked finite and recalibrated when it was kept
            if stop_reason == STOP_NON_FINITE:
                logger.warning("fine-tune round: values became non-finite at step %d; keeping the best state", self.non_finite_at)
        elif stop_reason == STOP_NON_FINITE:
            candidate.load_state_dict(self.last_good)
            logger.warning(
                "fine-tune round: values became non-finite at step %d; the candidate is the last checked state",
                self.non_finite_at,
            )
        else:
            self.recalibrate(self.steps)
        sync_buffers(candidate, distributed)
        candidate.eval()
        candidate.zero_grad(set_to_none=True)
