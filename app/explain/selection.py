"""Which images to show the user in a feedback round: a user's time is the scarce resource.

Strategies rank a pool of training images and return the top k:
- random: a seeded random sample (the thesis);
- entropy: highest predictive entropy first (the model is unsure; the poster);
- misclassified: wrong predictions first, most confident mistakes first, then by entropy;
- unreasonable: explanations first whose saliency sits where it should not (GRADIA, DeepFuse):
  on the painted red content found in this image (wherever it sits), off the object, or (conv
  models) a decision that rests on the few pixels its Grad-CAM map lights up (hiding them drops
  the class); for other models on a region salient across classes or one small spot. The score of an image is the largest of those
  shares of its saliency mass
  (`app.explain.unreasonable_score` defines them); the reason names the dominant cause, e.g. "saliency on a
  region salient across classes: 62 %". The ranking is diversified, so that one round shows
  different problems rather than the same shortcut k times: picking greedily, each remaining
  image's score is multiplied by `1 - DIVERSITY x (the largest cosine similarity between its
  saliency map and the maps already picked)`. Saliency is computed for a seeded random
  `UNREASONABLE_POOL` of the pool at most (one forward and backward per image).

Whatever the strategy, the k picks are spread over the classes (`spread_over_classes`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from app.errors import UserError
from app.explain.explanation_priors import build_priors
from app.explain.locator_config import LocatorConfig
from app.explain.options import SELECTION_STRATEGIES
from app.explain.pool_saliency import decisive_drops, pool_saliency
from app.explain.unreasonable_score import saliency_distribution, unreasonable_scores

logger = logging.getLogger(__name__)

DEFAULT_POOL = 2000  # images scored per round at most (a seeded random pool beyond that)
UNREASONABLE_POOL = 512  # of those, images whose saliency "unreasonable" computes at most
DIVERSITY = 0.5  # "unreasonable": how strongly a pick pushes down images whose saliency resembles it


@dataclass(frozen=True)
class Choice:
    """One selected image."""

    index: int  # index in the dataset
    relpath: str
    score: float  # the strategy's ranking score (higher = shown first)
    reason: str  # one line for the brush window, e.g. "entropy 1.92 nats"


def predict_probabilities(
    model: nn.Module, dataset: Any, indices: Sequence[int], device: torch.device, batch_size: int = 64
) -> torch.Tensor:
    """Softmax probabilities N x C (CPU) of dataset[indices], eval mode (restored after)."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.inference_mode():
            for start in range(0, len(indices), batch_size):
                images = torch.stack([dataset[i][0] for i in indices[start : start + batch_size]]).to(device)
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
    return [
        Choice(pool[i], relpaths[pool[i]], float(entropy[i]), f"uncertain: entropy {float(entropy[i]):.2f} nats") for i in order
    ]


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


def diversified_order(
    scores: torch.Tensor, distributions: torch.Tensor, picks: int, diversity: float = DIVERSITY
) -> Tuple[List[int], torch.Tensor]:
    """Greedy order of N images: (order, adjusted score at pick time, non-increasing).

    scores: N >= 0; distributions: N x H x W saliency maps. The first `picks` are chosen one by
    one, each time maximising `score x (1 - diversity x max cosine similarity to the maps picked
    so far)`; the rest follow by that adjusted score.
    """
    n = scores.shape[0]
    flat = distributions.flatten(1).float()
    unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-30)
    closest = torch.zeros(n)
    remaining = torch.ones(n, dtype=torch.bool)
    order: List[int] = []
    adjusted_at_pick = []
    for _ in range(min(picks, n)):
        adjusted = scores * (1 - diversity * closest)
        adjusted = torch.where(remaining, adjusted, torch.full_like(adjusted, -math.inf))
        best = int(torch.argmax(adjusted))
        order.append(best)
        adjusted_at_pick.append(float(adjusted[best]))
        remaining[best] = False
        closest = torch.maximum(closest, (unit @ unit[best]).clamp(0, 1))
    adjusted = scores * (1 - diversity * closest)
    rest = [i for i in torch.argsort(adjusted, descending=True, stable=True).tolist() if remaining[i]]
    return order + rest, torch.tensor(adjusted_at_pick + [float(adjusted[i]) for i in rest])


def _rank_unreasonable(context: Dict[str, Any]) -> List[Choice]:
    pool, relpaths, dataset = context["pool"], context["relpaths"], context["dataset"]
    scored = pool
    if len(scored) > UNREASONABLE_POOL:
        generator = torch.Generator().manual_seed(context["seed"] + 2)
        keep = sorted(torch.randperm(len(scored), generator=generator)[:UNREASONABLE_POOL].tolist())
        scored = [scored[i] for i in keep]
    saliency, targets, _ = pool_saliency(context["model"], dataset, scored, context["device"])
    distributions = saliency_distribution(saliency)
    priors = build_priors(
        dataset, distributions, targets, pool=scored, device=context["device"], locator_config=context["locator_config"]
    )
    decisive = decisive_drops(context["model"], dataset, scored, context["device"])
    result = unreasonable_scores(distributions, targets, priors, decisive)
    order, adjusted = diversified_order(result.score, distributions, context.get("k", 1))
    choices = [Choice(scored[i], relpaths[scored[i]], float(adjusted[rank]), result.reason(i)) for rank, i in enumerate(order)]
    # Images of the pool left out of the saliency pool follow, unscored, in random order.
    left = sorted(set(pool) - set(scored))
    if left:
        generator = torch.Generator().manual_seed(context["seed"] + 3)
        for j in torch.randperm(len(left), generator=generator).tolist():
            choices.append(Choice(left[j], relpaths[left[j]], -1.0, "not scored (beyond the saliency pool)"))
    return choices


RANKERS: Dict[str, Callable[[Dict[str, Any]], List[Choice]]] = {
    "random": _rank_random,
    "entropy": _rank_entropy,
    "misclassified": _rank_misclassified,
    "unreasonable": _rank_unreasonable,
}


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
    locator_config: LocatorConfig = LocatorConfig(),
) -> List[Choice]:
    """The k images of `dataset` (ImageFolderData) to show, best first, skipping `exclude` relpaths.

    Only a seeded random pool of `pool_size` images is scored, so a round on a large folder
    costs a bounded number of forward passes. `locator_config`: the content locator's settings
    ("unreasonable" finds the painted red in each image).
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
        "model": model,
        "dataset": dataset,
        "pool": pool,
        "relpaths": dataset.relpaths,
        "targets": dataset.targets,
        "classes": dataset.classes,
        "seed": seed,
        "device": device,
        "probabilities": probabilities,
        "k": k,
        "locator_config": locator_config,
    }
    ranked = RANKERS[strategy](context)
    return spread_over_classes(ranked, dataset.targets, k)


def spread_over_classes(ranked: Sequence[Choice], targets: Sequence[int], k: int) -> List[Choice]:
    """The first k of `ranked` with at most ceil(k / classes present) images per class, in
    ranked order (topped up from the rest when the classes run out).

    A round of six images that all show one class teaches propagation one look of the painted
    thing (a shortcut that encodes the class looks different in every class: a shade, a glyph)
    and, propagated, marks one class's shortcut only, which is itself a new shortcut
    (docs/reasonability.md has the run that showed it).
    """
    classes = {targets[c.index] for c in ranked}
    cap = max(1, math.ceil(k / max(1, len(classes))))
    chosen: List[Choice] = []
    per_class: Dict[int, int] = {}
    for choice in ranked:
        label = targets[choice.index]
        if per_class.get(label, 0) < cap:
            chosen.append(choice)
            per_class[label] = per_class.get(label, 0) + 1
            if len(chosen) == k:
                return chosen
    picked = {c.index for c in chosen}
    return chosen + [c for c in ranked if c.index not in picked][: k - len(chosen)]
