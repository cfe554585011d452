"""One optimiser step of guided training, for one process or many (DDP), in fp32 or mixed precision.

The training loop and the fine-tune round hand a batch to ``TrainingStep``; it computes
``CE + lam x guidance`` (``loss.guided_loss``), runs the backward, applies the optimiser, and
returns the batch's numbers for the whole global batch. One process: exactly the plain
``guided_loss`` / ``backward()`` / ``step()`` sequence.

Under torchrun (``app.engine.distributed``) the model is wrapped in DistributedDataParallel, around a
``GuidedStep`` module whose forward is the *whole* guided loss. The traps this avoids:

- DDP supports neither ``autograd.grad`` with respect to parameters nor
  ``backward(create_graph=True)``. The guidance losses take gradients with respect to the
  *inputs* only (``autograd.grad(..., create_graph=True)`` inside each process, which touches no
  parameter's ``.grad`` and fires none of DDP's hooks); the parameters see one ordinary
  ``backward()`` of ``CE + lam x penalty``, which launches DDP's gradient all-reduce once.
- Two forwards per step (the CE forward, then the annotated rows' forward normalised with its
  BatchNorm statistics) run inside one DDP forward call, so DDP prepares for exactly one
  backward per forward and needs no ``find_unused_parameters`` (every parameter takes part in
  the CE forward) nor ``static_graph`` (whether a rank has annotated rows changes its graph
  from step to step).
- BatchNorm normalises with each rank's own shard (the usual DDP choice; SyncBatchNorm would
  need the guidance forward to reuse synchronised statistics, which ``loss.batch_statistics``
  does not record). The equivalence test therefore uses a model without BatchNorm. The running
  averages are each rank's own until an evaluation, when ``app.engine.distributed.sync_buffers``
  averages them over the ranks: since the running mean is linear in the batch means, that is
  exactly the running average of the global batches' means (the variances' average leaves out
  the spread between shard means).
- Global means: DDP *averages* the ranks' gradients, but the batch's CE is a mean over all its
  rows and the penalty a mean over all its annotated rows, which the ranks hold in unequal
  numbers. One small all-reduce before the forward gives the global counts; each rank weights
  its CE by ``W x n_rank / n`` and its penalty by ``W x a_rank / a`` (``guided_loss``'s
  ``ce_weight`` / ``guidance_weight``), so the averaged gradient is that of the global batch's
  ``CE + lam x penalty``. The cross-rank sum of the penalty is thus taken by DDP's own
  (autograd-aware) gradient reduction; a collective inside the autograd graph would have to run
  in the same order on every rank, including ranks with nothing annotated, or deadlock.
- Agreement: that same all-reduce carries each rank's stop request, and one after the backward
  carries the metric sums and a non-finite flag, so every rank stops, or refuses the update, at
  the same step.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from app.engine.amp import MAX_OVERFLOW_STREAK, AmpPolicy
from app.engine.distributed import SINGLE_PROCESS, DistributedContext, all_reduce_sum
from loss import DEFAULT_PENALTY_GRADIENT, GuidedLoss, check_penalty_gradient, guided_loss

logger = logging.getLogger(__name__)


class GuidedStep(nn.Module):
    """``guided_loss`` of ``model`` as one module call: what DistributedDataParallel wraps, so
    both forwards of a step and the input-gradient pass sit inside one DDP forward."""

    def __init__(
        self, model: nn.Module, guidance: Optional[nn.Module], lam: float, penalty_gradient: str = DEFAULT_PENALTY_GRADIENT
    ) -> None:
        super().__init__()
        check_penalty_gradient(penalty_gradient)
        self.model = model
        self.penalty_gradient = penalty_gradient
        # Not a submodule: a Grad-CAM loss refers to a layer of `model`, which must not be
        # registered (and synchronised) twice.
        self.__dict__["guidance"] = guidance
        self.lam = lam

    def forward(
        self,
        images: Tensor,
        targets: Tensor,
        masks: Tensor,
        has_mask: Tensor,
        painted: Optional[Tensor],
        ce_weight: float,
        guidance_weight: float,
        score_scale: float,
    ) -> GuidedLoss:
        return guided_loss(
            self.model,
            images,
            targets,
            masks,
            has_mask,
            self.guidance,
            self.lam,
            painted=painted,
            ce_weight=ce_weight,
            guidance_weight=guidance_weight,
            score_scale=score_scale,
            penalty_gradient=self.penalty_gradient,
        )


@dataclass(frozen=True)
class StepOutcome:
    """What one step did, in global-batch numbers (the same on every rank)."""

    stopped: bool  # a rank asked to stop before this batch: nothing was computed
    diverged: bool = False  # the loss was not finite (fp16: kept overflowing): no update
    skipped: bool = False  # fp16: this step's gradients overflowed, the scaler skipped it
    loss: float = 0.0  # ce + lam x guidance of the global batch
    ce: float = 0.0  # mean cross-entropy over the global batch's rows
    guidance: float = 0.0  # mean guidance over its annotated rows (0 when none)
    correct: int = 0  # rows whose CE-forward prediction is the target
    n_images: int = 0  # rows in the global batch
    n_annotated: int = 0  # annotated rows in the global batch


def no_forward_buffer_sync(ddp_class: type = DistributedDataParallel) -> dict:
    """The keyword that stops ``ddp_class`` from copying rank 0's buffers at every forward.

    torch 2.14 renamed DDP's ``broadcast_buffers`` to ``forward_sync_buffers`` (the old name
    warns); older releases know only the old one. Read from the signature, not the version
    (docs/distributed.md).
    """
    parameters = inspect.signature(ddp_class.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in parameters else {"broadcast_buffers": False}


class TrainingStep:
    """Compute, reduce and apply guided steps of ``model`` (kept in ``self.model``).

    Args:
        model: the classifier, already on ``device``; trained in place.
        guidance: guidance loss or None; lam: its weight.
        device: this process's device.
        context: ``app.engine.distributed``'s context; several processes wrap the model in DDP.
        amp: ``app.engine.amp.AmpPolicy``; fp16 adds a GradScaler whose state lives here.
        penalty_gradient: how the guidance penalty's parameter gradient is taken, ``"exact"``
            (double backward) or ``"finite_difference"`` (``loss.finite_difference``).
    """

    def __init__(
        self,
        model: nn.Module,
        guidance: Optional[nn.Module],
        lam: float,
        *,
        device: torch.device,
        context: DistributedContext = SINGLE_PROCESS,
        amp: AmpPolicy = AmpPolicy(),
        penalty_gradient: str = DEFAULT_PENALTY_GRADIENT,
    ) -> None:
        self.model = model
        self.guidance = guidance
        self.lam = lam
        self.context = context
        self.amp = amp
        self.scaler = amp.make_scaler()
        self._overflow_streak = 0
        module: nn.Module = GuidedStep(model, guidance, lam, penalty_gradient)
        if context.enabled:
            # Each rank keeps its own BatchNorm running averages between evaluations, which
            # `app.engine.distributed.sync_buffers` then averages (DDP's default, copying rank 0's at
            # every forward, makes them an average over rank 0's rows only).
            module = DistributedDataParallel(
                module,
                device_ids=[device.index] if device.type == "cuda" else None,
                **no_forward_buffer_sync(),
            )
        self.module = module

    def __call__(
        self,
        images: Tensor,
        targets: Tensor,
        masks: Tensor,
        has_mask: Tensor,
        optimizer: torch.optim.Optimizer,
        *,
        painted: Optional[Tensor] = None,
        stop: bool = False,
    ) -> StepOutcome:
        """One step on this process's rows of the global batch.

        ``stop``: this process wants to stop before the batch (pause-stop, Ctrl+C); when any
        rank does, no rank computes anything and the outcome has ``stopped``. A non-finite
        loss on any rank leaves the weights untouched on every rank (``diverged``).
        """
        n_local, a_local = int(targets.shape[0]), int(has_mask.sum())
        stop_votes, n_global, a_global = all_reduce_sum([float(stop), n_local, a_local], self.context)
        if stop_votes > 0:
            return StepOutcome(stopped=True)
        world = self.context.world_size
        ce_weight = world * n_local / n_global if self.context.enabled else 1.0
        guidance_weight = world * a_local / a_global if self.context.enabled and a_global else 1.0
        score_scale = float(self.scaler.get_scale()) if self.scaler is not None else 1.0

        with self.amp.autocast():
            result: GuidedLoss = self.module(images, targets, masks, has_mask, painted, ce_weight, guidance_weight, score_scale)
        finite = bool(torch.isfinite(result.total))
        optimizer.zero_grad(set_to_none=True)
        if finite or self.context.enabled or self.scaler is not None:
            # Under DDP every rank must take part in the gradient all-reduce, NaN or not.
            (self.scaler.scale(result.total) if self.scaler is not None else result.total).backward()
        correct = int((result.logits.argmax(1) == targets).sum())
        ce_sum, guidance_sum, correct_sum, non_finite = all_reduce_sum(
            [float(result.ce) * n_local, float(result.guidance) * a_local, correct, float(not finite)],
            self.context,
        )
        skipped = False
        if self.scaler is not None:
            scale_before = self.scaler.get_scale()
            self.scaler.step(optimizer)  # skipped when the (all-reduced) gradients hold inf/NaN
            self.scaler.update()
            skipped = self.scaler.get_scale() < scale_before
            self._overflow_streak = self._overflow_streak + 1 if skipped else 0
            diverged = self._overflow_streak >= MAX_OVERFLOW_STREAK
            if skipped:
                logger.info("fp16 gradients overflowed; step skipped, loss scale now %g", self.scaler.get_scale())
        else:
            diverged = non_finite > 0
            if not diverged:
                optimizer.step()
        ce = ce_sum / n_global
        guidance = guidance_sum / a_global if a_global else 0.0
        uses_guidance = self.guidance is not None and self.lam > 0 and a_global > 0
        return StepOutcome(
            stopped=False,
            diverged=diverged,
            skipped=skipped,
            loss=ce + self.lam * guidance if uses_guidance else ce,
            ce=ce,
            guidance=guidance,
            correct=int(correct_sum),
            n_images=int(n_global),
            n_annotated=int(a_global),
        )
