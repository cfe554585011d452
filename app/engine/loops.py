"""The training and evaluation loops: plain functions returning metric dicts (timm-style).

Batches are `datasets.Sample` tuples: images N x 3 x H x W (normalised), targets N,
masks N x H x W in {-1, 0, 1}, has_mask N bool, index N.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from app.engine.finite_guard import MAX_ABS_WEIGHT, parameters_ok
from app.engine.guided_step import TrainingStep
from app.errors import UserError
from loss import swap_red_regions

logger = logging.getLogger(__name__)

# on_batch(batch, batches, loss, accuracy, n_annotated, ce): loss = ce + lambda x guidance
BatchCallback = Callable[[int, int, float, float, int], None]


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the message suggests what to change."""


def move_batch(batch: Sequence[torch.Tensor], device: torch.device):
    """Images, targets, masks, has_mask of a Sample batch (or any sequence starting with those
    four) on `device`."""
    images, targets, masks, has_mask = batch[:4]
    non_blocking = device.type == "cuda"
    return (
        images.to(device, non_blocking=non_blocking),
        targets.to(device, non_blocking=non_blocking),
        masks.to(device, non_blocking=non_blocking),
        has_mask.to(device, non_blocking=non_blocking).bool(),
    )


def train_one_epoch(
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    guidance: Optional[nn.Module] = None,
    lam: float = 0.0,
    counterexamples: bool = False,
    on_batch: Optional[BatchCallback] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    step: Optional[TrainingStep] = None,
) -> Dict[str, float]:
    """One pass over `loader` minimising CE + lam x guidance (guidance on annotated rows only).

    With `counterexamples`, each annotated image's red pixels are first replaced by another
    batch image's (`loss.swap_red_regions`), so the painted region stops predicting the label;
    the cross-entropy sees these counterexamples, the penalty the images as painted (when few
    rows are annotated; see `loss.guided_loss`).

    `should_stop` is polled before every batch (it may block, which is how pausing works);
    when it returns True the epoch ends early and the result has `stopped = 1.0`.
    `step` computes and applies each batch (`app.engine.guided_step.TrainingStep`: data-parallel,
    mixed precision); by default a plain one-process step of `model`, `guidance`, `lam`. Under
    torchrun the loader yields this process's rows and the numbers are the global batch's.
    Returns loss, ce, guidance (means per image), accuracy in [0, 1], n_images, n_annotated.
    Raises TrainingDiverged on a non-finite loss (the weights are not updated by that batch) or
    when a step leaves a weight non-finite or above `finite_guard.MAX_ABS_WEIGHT` (the caller
    must then not save or use the model: its last checkpoint is the last good state).
    """
    if step is None:
        step = TrainingStep(model, guidance, lam, device=device)
    elif step.model is not model:
        raise ValueError("step must be a TrainingStep of the model being trained")
    model.train()
    total_loss = total_ce = total_guidance = 0.0
    correct = seen = annotated = 0
    stopped = False
    batches = len(loader)
    for batch_number, batch in enumerate(loader, start=1):
        stop = should_stop is not None and should_stop()
        images, targets, masks, has_mask = move_batch(batch, device)
        painted = None
        if counterexamples and not stop:
            painted, images = images, swap_red_regions(images, masks, has_mask)
        outcome = step(images, targets, masks, has_mask, optimizer, painted=painted, stop=stop)
        if outcome.stopped:  # on every rank at the same batch
            stopped = True
            break
        if outcome.diverged:
            raise TrainingDiverged(
                f"training diverged: the loss became {outcome.loss} at batch {batch_number}; lower the learning rate or lambda"
            )
        if not parameters_ok(model):
            raise TrainingDiverged(
                f"training diverged: the weights became non-finite or larger than {MAX_ABS_WEIGHT:.0g} at batch "
                f"{batch_number} (loss {outcome.loss:.3g}); lower the learning rate or lambda"
            )

        n, n_annotated = outcome.n_images, outcome.n_annotated
        total_loss += outcome.loss * n
        total_ce += outcome.ce * n
        total_guidance += outcome.guidance * n_annotated
        correct += outcome.correct
        seen += n
        annotated += n_annotated
        if on_batch is not None:
            on_batch(batch_number, batches, outcome.loss, outcome.correct / n, n_annotated, outcome.ce)
    seen_or_one = max(seen, 1)
    return {
        "loss": total_loss / seen_or_one,
        "ce": total_ce / seen_or_one,
        "guidance": total_guidance / max(annotated, 1),
        "accuracy": correct / seen_or_one,
        "n_images": float(seen),
        "n_annotated": float(annotated),
        "stopped": float(stopped),
    }


def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    device: torch.device,
    classes: Optional[Sequence[str]] = None,
    max_images: Optional[int] = None,
) -> Dict[str, Any]:
    """Mean CE loss, accuracy in [0, 1], n_images and per-class accuracy, in eval mode.

    `max_images` stops after that many images (the loader's order decides which).
    """
    was_training = model.training
    model.eval()
    loss_sum = 0.0
    correct = seen = 0
    num_classes = len(classes) if classes is not None else None
    class_correct: Dict[int, int] = {}
    class_seen: Dict[int, int] = {}
    try:
        with torch.inference_mode():
            for batch in loader:
                images, targets = (part.to(device) for part in batch[:2])  # a Sample batch's first two
                logits = model(images)
                loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
                hits = logits.argmax(1) == targets
                correct += int(hits.sum())
                seen += targets.shape[0]
                for target, hit in zip(targets.tolist(), hits.tolist()):
                    class_seen[target] = class_seen.get(target, 0) + 1
                    class_correct[target] = class_correct.get(target, 0) + int(hit)
                if max_images is not None and seen >= max_images:
                    break
    finally:
        model.train(was_training)
    if seen == 0:
        return {"loss": math.nan, "accuracy": math.nan, "n_images": 0, "per_class_accuracy": {}}

    def class_name(index: int) -> str:
        return classes[index] if classes is not None and index < len(classes) else str(index)

    per_class = {class_name(c): class_correct[c] / class_seen[c] for c in sorted(class_seen)}
    if num_classes is not None:
        for c in range(num_classes):
            per_class.setdefault(class_name(c), math.nan)
    return {
        "loss": loss_sum / seen,
        "accuracy": correct / seen,
        "n_images": seen,
        "per_class_accuracy": per_class,
    }
