"""Which images to show the user in a feedback round: a user's time is the scarce resource.

Strategies rank a pool of training images and return the top k:
- random: a seeded random sample (the thesis);
- entropy: highest predictive entropy first (the model is unsure; the poster);
- misclassified: wrong predictions first, most confident mistakes first, then by entropy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from .errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_POOL = 2000  # images scored per round at most (a seeded random pool beyond that)


@dataclass(frozen=True)
class Choice:
    """One selected image."""

    index: int  # index in the dataset
    relpath: str
    score: float  # the strategy's ranking score (higher = shown first)
    reason: str  # one line for the brush window, e.g. "entropy 1.92 nats"


def predict_probabilities(model: nn.Module, dataset: Any, indices: Sequence[int], device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Softmax probabilities N x C (CPU) of dataset[indices], eval mode (restored after)."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.inference_mode():
            for start in range(0, len(indices), batch_size):
                images = torch.stack([dataset[i][0] for i in indices[start:start + batch_size]]).to(device)
                chunks.append(torch.softmax(model(images), dim=1).cpu())
    finally:
        model.train(was_training)
    if not chunks:
        return torch.zeros(0, len(getattr(dataset, "classes", [])) or 1)
    return torch.cat(chunks)


def _entropy(probabilities: torch.Tensor) -> torch.Tensor:
    return -(probabilities * probabilities.clamp_min(1e-12).log()).sum(1)


def _rank_random(context: Dict[str, Any]) -> List[Choice]:
    pool: List[int] = context["pool"]
    generator = torch.Generator().manual_seed(context["seed"])
    order = torch.randperm(len(pool), generator=generator).tolist()
    relpaths = context["relpaths"]
    return [Choice(pool[i], relpaths[pool[i]], float(len(order) - rank), "random pick") for rank, i in enumerate(order)]


def _rank_entropy(context: Dict[str, Any]) -> List[Choice]:
    pool, relpaths = context["pool"], context["relpaths"]
    entropy = _entropy(context["probabilities"]())
    order = torch.argsort(entropy, descending=True).tolist()
    return [Choice(pool[i], relpaths[pool[i]], float(entropy[i]), f"uncertain: entropy {float(entropy[i]):.2f} nats") for i in order]


def _rank_misclassified(context: Dict[str, Any]) -> List[Choice]:
    pool, relpaths, targets, classes = context["pool"], context["relpaths"], context["targets"], context["classes"]
    probabilities = context["probabilities"]()
    confidence, predicted = probabilities.max(1)
    entropy = _entropy(probabilities)
    wrong = predicted != torch.tensor([targets[i] for i in pool])
    # Mistakes first (score > 1, most confident mistakes first), then the rest by entropy (< 1).
    score = torch.where(wrong, 1.0 + confidence, entropy / (entropy.max().clamp_min(1e-12) * 1.0001))
    order = torch.argsort(score, descending=True).tolist()
    choices = []
    for i in order:
        if wrong[i]:
            reason = f"misclassified as {classes[int(predicted[i])]} ({float(confidence[i]):.0%})"
        else:
            reason = f"correct but unsure: entropy {float(entropy[i]):.2f} nats"
        choices.append(Choice(pool[i], relpaths[pool[i]], float(score[i]), reason))
    return choices


RANKERS: Dict[str, Callable[[Dict[str, Any]], List[Choice]]] = {
    "random": _rank_random,
    "entropy": _rank_entropy,
    "misclassified": _rank_misclassified,
}
SELECTION_STRATEGIES = tuple(RANKERS)


def select_images(
    model: nn.Module,
    dataset: Any,
    k: int,
    strategy: str = "random",
    *,
    device: torch.device = torch.device("cpu"),
    seed: int = 0,
    exclude: Sequence[str] = (),
    pool_size: Optional[int] = DEFAULT_POOL,
) -> List[Choice]:
    """The k images of `dataset` (ImageFolderData) to show, best first, skipping `exclude` relpaths.

    Only a seeded random pool of `pool_size` images is scored, so a round on a large folder
    costs a bounded number of forward passes.
    """
    if strategy not in RANKERS:
        raise UserError(f"unknown selection strategy '{strategy}'; choose one of {', '.join(SELECTION_STRATEGIES)}")
    if k < 1:
        raise UserError(f"the number of images to select must be >= 1, got {k}")
    excluded = set(exclude)
    pool = [i for i, relpath in enumerate(dataset.relpaths) if relpath not in excluded]
    if pool_size is not None and len(pool) > pool_size:
        generator = torch.Generator().manual_seed(seed + 1)
        keep = sorted(torch.randperm(len(pool), generator=generator)[:pool_size].tolist())
        pool = [pool[i] for i in keep]
    if not pool:
        return []
    cache: Dict[str, torch.Tensor] = {}

    def probabilities() -> torch.Tensor:
        if "p" not in cache:
            cache["p"] = predict_probabilities(model, dataset, pool, device)
        return cache["p"]

    context = {
        "model": model, "dataset": dataset, "pool": pool, "relpaths": dataset.relpaths,
        "targets": dataset.targets, "classes": dataset.classes, "seed": seed, "device": device,
        "probabilities": probabilities,
    }
    ranked = RANKERS[strategy](context)
    return ranked[:k]
