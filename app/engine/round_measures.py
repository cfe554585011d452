"""What a fine-tune round measures of a model, the same five ways before and after it.

`measure` takes the validation loss and accuracy, the guidance loss and the shares of saliency
on red and green over a fixed probe of annotated images (`Probe`), the shortcut-broken
validation per image and the test accuracy; `round_report` turns the two `Measures` into the
round's `FinetuneReport`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from app.engine.accuracy_change import AccuracyChange
from app.engine.finetune_report import FinetuneReport
from app.engine.loops import evaluate
from app.explain.explanation_metrics import gradient_saliency, mass_share
from datasets import stack_samples

GUIDANCE_EVAL_IMAGES = 256  # annotated images the stop check measures the guidance loss on
CHUNK = 32  # images per forward/backward when measuring


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


@dataclass(frozen=True)
class Probe:
    """A fixed, seeded subset of the annotated images (at most GUIDANCE_EVAL_IMAGES) on which the
    guidance loss and the saliency shares are measured: N x C x H x W normalised, N, N x H x W."""

    images: torch.Tensor
    targets: torch.Tensor
    masks: torch.Tensor

    @classmethod
    def draw(cls, train_data: Any, indices: List[int], generator: torch.Generator, device: torch.device) -> "Probe":
        order = torch.randperm(len(indices), generator=generator).tolist()
        measured = [indices[i] for i in order[:GUIDANCE_EVAL_IMAGES]]
        images, targets, masks, _ = stack_samples(train_data, measured, device)
        return cls(images, targets, masks)

    def guidance(self, model: nn.Module, guidance: nn.Module) -> float:
        return guidance_value(model, guidance, self.images, self.targets, self.masks)

    def shares(self, model: nn.Module) -> Tuple[float, float]:
        return saliency_shares(model, self.images, self.targets, self.masks)


@dataclass(frozen=True)
class Measures:
    """One model measured the round's five ways."""

    val: Dict[str, Any]  # `evaluate`'s dict on the validation split (loss, accuracy, ...)
    guidance: float  # guidance loss on the probe
    red_share: float  # share of saliency on red, in [0, 1]
    green_share: float  # share of saliency on green, in [0, 1]
    broken: Optional[Dict[str, Any]]  # shortcut-broken validation per image; None without one
    test_accuracy: Optional[float]  # on the test folder; None without one


def measure(
    model: nn.Module,
    guidance: nn.Module,
    probe: Probe,
    *,
    val_loader: Any,
    broken: Optional[Any],
    test_loader: Optional[Any],
    device: torch.device,
    max_images: Optional[int],
) -> Measures:
    """`model` measured on the validation split, the probe (guidance loss, saliency shares), the
    shortcut-broken validation (per image) and the test folder, in that order."""
    val = evaluate(model, val_loader, device=device, max_images=max_images)
    guidance_loss = probe.guidance(model, guidance)
    red, green = probe.shares(model)
    broken_now = broken.evaluate(model, device, max_images, per_image=True) if broken is not None else None
    test = evaluate(model, test_loader, device=device, max_images=max_images)["accuracy"] if test_loader is not None else None
    return Measures(val, guidance_loss, red, green, broken_now, test)


def round_report(
    before: Measures,
    after: Measures,
    *,
    stop_reason: str,
    steps: int,
    n_annotated: int,
    seconds: float,
    broken_found: int,
    kept_step: Optional[int],
) -> FinetuneReport:
    """The report of a round from the model's measures before it and the candidate's after."""
    paired = paired_change(before.broken, after.broken)
    return FinetuneReport(
        stop_reason=stop_reason,
        steps=steps,
        n_annotated=n_annotated,
        val_loss_before=before.val["loss"],
        val_loss_after=after.val["loss"],
        val_accuracy_before=before.val["accuracy"],
        val_accuracy_after=after.val["accuracy"],
        guidance_before=before.guidance,
        guidance_after=after.guidance,
        red_share_before=before.red_share,
        red_share_after=after.red_share,
        green_share_before=before.green_share,
        green_share_after=after.green_share,
        seconds=seconds,
        broken_accuracy_before=before.broken["accuracy"] if before.broken is not None else None,
        broken_accuracy_after=after.broken["accuracy"] if after.broken is not None else None,
        broken_found=broken_found,
        broken_gained=paired.gained if paired is not None else None,
        broken_lost=paired.lost if paired is not None else None,
        broken_images=paired.n if paired is not None else 0,
        test_accuracy_before=before.test_accuracy,
        test_accuracy_after=after.test_accuracy,
        kept_step=kept_step,
    )
