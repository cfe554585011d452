"""Discovery: the training set grouped by where and at what the model looks, shortcut groups first.

SpRAy (Lapuschkin et al. 2019) clusters downsized relevance maps and finds the Clever-Hans group
as its own cluster; Reveal2Revise (Pahde et al. 2023) uses it to find artifact groups. Here each
image of a pool (the whole training set up to `pool_size`) gets:

- its saliency map (`app.explain.saliency`, Grad-CAM by default: cheap, and on the zoo's plain
  models the second best at pointing at the shortcut) for its own class, which the features
  below are made of; and the map shown (the members' maps and a group's mean heatmap), by
  default the fine Grad-CAM (a stage earlier, times the gradient), which puts 1.5-3x more of
  its mass on a small stamp than the last stage's Grad-CAM (docs/discovery.md);
- `where`: the map shrunk to `GRID x GRID`, as a distribution (sums to 1), square-rooted
  (Hellinger), so a cluster gathers images that look at the same place;
- `what`: the model's features under the map's top region: the Grad-CAM layer's activations
  (`C x h x w`) averaged with the map (shrunk to `h x w`, its top `TOP_SHARE` kept) as
  weights, L2-normalised, so a cluster gathers images that look at the same *thing* wherever
  it sits (a moving stamp, a tag);
- `focus`: the share of its saliency in one small window (`unreasonable_score.focus_share`);
- `drop`: how much hiding the map's top region lowers the class probability
  (`app.explain.faithfulness`): whether the model decides by those few pixels.

As in SpRAy, each class is clustered on its own (k-means, `n_clusters` groups per class): across
classes the model's features differ by class, so a pooled clustering splits by class and mixes
the images that carry a shortcut with those that do not; within a class, the images decided by a
stamp and those decided by the object part. The features are `[what, WHERE_WEIGHT x where,
DROP_WEIGHT x drop]`: the drop joins them so that the images the model decides by a few pixels
gather even when their maps sit where the object's do (a tag tied to the object). Each
cluster reports its size, class mix, mean heatmap, mean focus and drop, how consistent its
place is (the mean map's focus over the members' mean focus: near 1 at one place, near 0
anywhere), and, when some images are painted green, the share of saliency off the object.
Each cluster also shows what sets its images apart from the rest of their class: the absolute
difference of their mean image and the class's other images' mean (`shared_look`), which lights
a shortcut at a fixed place (a frame, a corner tag) that no saliency map shows
(docs/discovery.md). Clusters are sorted by their shortcut score, the mean drop (a group whose
decision rests on the few pixels its maps light up comes first), small clusters (under `MIN_CLUSTER_SHARE` of the
pool) after the rest. The focus is reported but not scored: on the zoo's plain models Grad-CAM
on a faint digit is *more* concentrated than on the stamp (docs/discovery.md).

Costs per image one saliency map (a forward and a backward for Grad-CAM), one more for the map
shown (fine Grad-CAM) and three forwards; a
`progress(done, total)` callback and a `should_stop()` check run between batches.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from app.explain.explanation_priors import annotated_masks, mask_priors
from app.explain.faithfulness import TOP_SHARE, hiding_effect, top_region
from app.explain.options import DEFAULT_CLUSTERS, DISCOVERY_DISPLAY_METHOD, DISCOVERY_METHOD
from app.explain.saliency import saliency_maps
from app.explain.unreasonable_score import focus_share, saliency_distribution, weighted_share
from models import gradcam_layer

logger = logging.getLogger(__name__)

GRID = 8  # side of the shrunk map that `where` clusters
MAP_SIDE = 32  # side of the per-image maps kept (mean heatmaps, JSON)
WHERE_WEIGHT = 1.0  # weight of `where` against `what` (both unit length)
DROP_WEIGHT = 2.0  # weight of the drop (in [-1, 1]) against them
MIN_CLUSTER_SHARE = 0.02  # smaller clusters are listed last, whatever their score
BATCH = 64
EXAMPLES = 12  # member relpaths listed per cluster, the most typical first


@dataclass(frozen=True)
class Cluster:
    """One group of images whose explanations look alike."""

    rank: int  # 0 = shown first (most shortcut-like)
    indices: tuple  # dataset indices, the most typical first
    relpaths: tuple  # the same images' relpaths
    class_counts: Dict[str, int]  # class name -> members, largest first
    mean_map: np.ndarray  # MAP_SIDE x MAP_SIDE float32 in [0, 1]: the members' mean saliency
    focus: float  # mean share of a member's saliency in one small window, in [0, 1]
    drop: float  # mean drop of the class probability when a member's top region is hidden, [-1, 1]
    place_consistency: float  # focus of the mean map / mean focus, in [0, 1]: 1 one place, 0 anywhere
    accuracy: float  # share of members the model classifies correctly
    shortcut_score: float  # max(mean drop, 0): high = the decision rests on the few pixels the maps light
    off_object: Optional[float] = None  # mean share of saliency off the green of the class (None: no green painted)
    shared_look: Optional[np.ndarray] = None  # MAP_SIDE x MAP_SIDE in [0, 1]: |members' mean image - the class's others'|,
    # on one scale for all clusters of a discovery (1 = the largest difference)

    @property
    def size(self) -> int:
        return len(self.indices)

    def describe(self) -> str:
        """One line, e.g. '212 images, all class 3; hiding the top 5 % of each map drops the class
        by 71 points; 18 % of the saliency in the densest spot, in different places'."""
        total = max(1, self.size)
        top_class, top_count = next(iter(self.class_counts.items())) if self.class_counts else ("?", 0)
        mix = f"{100 * top_count / total:.0f} % class {top_class}" if top_count < total else f"all class {top_class}"
        where = "at one place" if self.place_consistency >= 0.5 else "in different places"
        line = (
            f"{self.size} images, {mix}; hiding the top {100 * TOP_SHARE:.0f} % of each map drops the class by "
            f"{100 * self.drop:.0f} points; {100 * self.focus:.0f} % of the saliency in the densest spot, {where}"
        )
        if self.off_object is not None:
            line += f"; {100 * self.off_object:.0f} % off the object"
        return line

    def to_json(self) -> Dict[str, Any]:
        return {
            "rank": self.rank,
            "size": self.size,
            "description": self.describe(),
            "class_counts": self.class_counts,
            "focus": round(self.focus, 4),
            "drop": round(self.drop, 4),
            "place_consistency": round(self.place_consistency, 4),
            "accuracy": round(self.accuracy, 4),
            "shortcut_score": round(self.shortcut_score, 4),
            "off_object": None if self.off_object is None else round(self.off_object, 4),
            "examples": list(self.relpaths[:EXAMPLES]),
            "members": list(self.relpaths),
            "mean_map": np.round(self.mean_map, 3).tolist(),
            "shared_look": None if self.shared_look is None else np.round(self.shared_look, 3).tolist(),
        }


@dataclass(frozen=True)
class ImageScores:
    """Per image of the pool (N rows, in pool order)."""

    indices: tuple  # dataset indices
    focus: torch.Tensor  # N in [0, 1]
    drop: torch.Tensor  # N in [-1, 1]
    cluster: torch.Tensor  # N cluster ranks
    maps: torch.Tensor  # N x MAP_SIDE x MAP_SIDE saliency distributions (sum 1)

    @property
    def evidence(self) -> torch.Tensor:
        """N in [0, 1]: max(drop, 0), the per-image shortcut evidence."""
        return self.drop.clamp_min(0)


@dataclass(frozen=True)
class Discovery:
    """The clusters of a pool, shortcut-like first, and the per-image scores."""

    clusters: List[Cluster]
    images: ImageScores
    method: str  # the saliency method the features are made of
    seconds: float
    classes: List[str] = field(default_factory=list)
    display_method: str = DISCOVERY_DISPLAY_METHOD  # the method of the maps shown

    def to_json(self) -> Dict[str, Any]:
        return {
            "method": self.method,
            "display_method": self.display_method,
            "n_images": len(self.images.indices),
            "seconds": round(self.seconds, 2),
            "clusters": [c.to_json() for c in self.clusters],
        }


# ----------------------------------------------------------------------------- features
def _features_under(layer_output: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """N x C: the layer's activations (N x C x h x w) averaged over each map's top region
    (maps N x H x W >= 0, shrunk to h x w), L2-normalised."""
    shrunk = torch.nn.functional.adaptive_avg_pool2d(maps[:, None].float(), layer_output.shape[-2:])[:, 0]
    weights = shrunk * top_region(shrunk, max(TOP_SHARE, 1.0 / shrunk[0].numel())).float()
    weights = weights / weights.flatten(1).sum(1).clamp_min(1e-30).view(-1, 1, 1)
    pooled = (layer_output.float() * weights[:, None]).sum(dim=(2, 3))
    return pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _layer_outputs(model: nn.Module, layer: nn.Module, images: torch.Tensor) -> torch.Tensor:
    captured: Dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        captured["out"] = output.detach()

    handle = layer.register_forward_hook(keep)
    try:
        with torch.inference_mode():
            model(images)
    finally:
        handle.remove()
    return captured["out"]


def kmeans(points: np.ndarray, k: int, seed: int = 0, iterations: int = 50, restarts: int = 4) -> np.ndarray:
    """Cluster labels (N ints in [0, k)) of points (N x D) by k-means++ with `restarts` seeded
    starts; the start with the lowest within-cluster sum of squares wins."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(points)))
    return KMeans(n_clusters=k, n_init=restarts, max_iter=iterations, random_state=seed).fit_predict(points)


# ----------------------------------------------------------------------------- discovery
def discover(
    model: nn.Module,
    dataset: Any,
    *,
    device: torch.device = torch.device("cpu"),
    method: str = DISCOVERY_METHOD,
    display_method: str = DISCOVERY_DISPLAY_METHOD,
    n_clusters: int = DEFAULT_CLUSTERS,  # per class
    pool_size: Optional[int] = None,
    indices: Optional[Sequence[int]] = None,
    seed: int = 0,
    progress: Optional[Callable[[int, int], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> Optional[Discovery]:
    """Cluster the explanations of `dataset` (ImageFolderData) (module docstring).

    indices: the images to consider (default all), of which a seeded random `pool_size` at most;
    n_clusters: groups per class; `method` makes the maps the groups are formed by,
    `display_method` the maps shown (`ImageScores.maps`, the clusters' mean maps).
    Returns None when `should_stop()` turned True. The model is left in the mode it was in.
    """
    started = time.monotonic()
    chosen = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    if pool_size is not None and len(chosen) > pool_size:
        generator = torch.Generator().manual_seed(seed)
        chosen = sorted(chosen[i] for i in torch.randperm(len(chosen), generator=generator)[:pool_size].tolist())
    layer = gradcam_layer(model)
    was_training = model.training
    maps_kept, method_kept, what, where, focus, drop, targets, correct, looks = [], [], [], [], [], [], [], [], []
    try:
        for start in range(0, len(chosen), BATCH):
            if should_stop is not None and should_stop():
                return None
            batch = [dataset[i] for i in chosen[start : start + BATCH]]
            images = torch.stack([s[0] for s in batch]).to(device)
            labels = torch.tensor([int(s[1]) for s in batch], dtype=torch.long)
            raw = saliency_maps(model, images, labels.to(device), method, normalise=False)
            model.eval()
            outputs = _layer_outputs(model, layer, images)
            with torch.inference_mode():
                correct.append((model(images).argmax(1).cpu() == labels).float())
            effect = hiding_effect(model, images, labels, raw)
            distribution = saliency_distribution(raw)
            side = min(MAP_SIDE, distribution.shape[-1])
            method_kept.append(_shrunk(distribution, side))
            if display_method == method:
                maps_kept.append(method_kept[-1])
            else:
                maps_kept.append(_shrunk(saliency_maps(model, images, labels.to(device), display_method, normalise=False), side))
            looks.append(torch.nn.functional.adaptive_avg_pool2d(images.detach().float(), side).cpu().half())
            where.append(torch.nn.functional.adaptive_avg_pool2d(distribution[:, None], GRID)[:, 0].flatten(1).sqrt())
            what.append(_features_under(outputs, raw.to(outputs.device)).cpu())
            focus.append(focus_share(distribution))
            drop.append(effect.drop)
            targets.append(labels)
            if progress is not None:
                progress(min(start + BATCH, len(chosen)), len(chosen))
    finally:
        model.train(was_training)
    if not chosen:
        empty = torch.zeros(0)
        scores = ImageScores((), empty, empty, torch.zeros(0, dtype=torch.long), torch.zeros(0, MAP_SIDE, MAP_SIDE))
        return Discovery([], scores, method, time.monotonic() - started, list(dataset.classes), display_method)
    maps, focus_t, drop_t = torch.cat(maps_kept), torch.cat(focus), torch.cat(drop)
    method_maps = torch.cat(method_kept)  # the statistics below are the `method` maps', as focus and drop
    targets_t, correct_t = torch.cat(targets), torch.cat(correct)
    where_t = torch.cat(where)
    where_t = where_t / where_t.norm(dim=1, keepdim=True).clamp_min(1e-12)
    points = torch.cat([torch.cat(what), WHERE_WEIGHT * where_t, DROP_WEIGHT * drop_t[:, None]], dim=1)
    points = points.numpy().astype(np.float64)
    labels = np.zeros(len(chosen), dtype=np.int64)
    for number, label in enumerate(torch.unique(targets_t).tolist()):
        rows = np.flatnonzero(targets_t.numpy() == label)
        labels[rows] = number * n_clusters + kmeans(points[rows], n_clusters, seed=seed)
    off_object = _off_object(dataset, method_maps, targets_t)
    clusters = _clusters(dataset, chosen, labels, points, (maps, method_maps), focus_t, drop_t, targets_t, correct_t, off_object)
    looks_t = torch.cat(looks)
    clusters = _with_shared_looks(clusters, looks_t, targets_t, pool_indices=chosen)
    rank_of = {id(c): rank for rank, c in enumerate(clusters)}
    cluster_rank = torch.zeros(len(chosen), dtype=torch.long)
    position = {index: row for row, index in enumerate(chosen)}
    for cluster in clusters:
        for index in cluster.indices:
            cluster_rank[position[index]] = rank_of[id(cluster)]
    scores = ImageScores(tuple(chosen), focus_t, drop_t, cluster_rank, maps)
    return Discovery(clusters, scores, method, time.monotonic() - started, list(dataset.classes), display_method)


def _shrunk(maps: torch.Tensor, side: int) -> torch.Tensor:
    """`N x H x W` maps (>= 0) averaged down to `N x side x side` distributions (each sums to 1)."""
    return saliency_distribution(torch.nn.functional.adaptive_avg_pool2d(maps[:, None].float(), side)[:, 0])


def _with_shared_looks(
    clusters: List[Cluster], looks: torch.Tensor, targets: torch.Tensor, pool_indices: List[int]
) -> List[Cluster]:
    """The clusters with their `shared_look`: |mean of a cluster's images - mean of the other
    images of its main class| (the pool's when the class has no others), summed over channels,
    all on one scale (the largest difference of any cluster is 1): a group that lacks what a
    third of its class has (a frame) differs there too, but about a third as much as the group
    that has it, so it must not be scaled up to look the same.
    looks: N x C x s x s images shrunk to the map side, in pool order."""
    row = {index: r for r, index in enumerate(pool_indices)}
    differences: List[Optional[torch.Tensor]] = []
    for cluster in clusters:
        members = torch.zeros(len(looks), dtype=torch.bool)
        members[[row[i] for i in cluster.indices]] = True
        main_class = int(torch.mode(targets[members]).values)
        others = ~members & (targets == main_class)
        if not others.any():
            others = ~members
        differences.append(
            (looks[members].float().mean(0) - looks[others].float().mean(0)).abs().sum(0) if others.any() else None
        )
    peak = max((float(d.max()) for d in differences if d is not None), default=0.0)
    scale = peak if peak > 0 else 1.0
    return [
        c if d is None else Cluster(**{**c.__dict__, "shared_look": (d / scale).numpy().astype(np.float32)})
        for c, d in zip(clusters, differences)
    ]


def _off_object(dataset: Any, maps: torch.Tensor, targets: torch.Tensor) -> Optional[torch.Tensor]:
    """N shares of saliency off the green painted on images of the same class, or None."""
    if getattr(dataset, "masks", None) is None:
        return None
    indices, masks = annotated_masks(dataset)
    _, objects = mask_priors(masks, [dataset.targets[i] for i in indices], len(dataset.classes))
    if objects is None:
        return None
    objects = torch.nn.functional.adaptive_max_pool2d(objects[:, None], maps.shape[-1])[:, 0]
    return 1.0 - weighted_share(maps, objects[targets])


def _clusters(
    dataset: Any,
    chosen: List[int],
    labels: np.ndarray,
    points: np.ndarray,
    maps: Tuple[torch.Tensor, torch.Tensor],  # (shown, method) distributions, N x s x s each
    focus: torch.Tensor,
    drop: torch.Tensor,
    targets: torch.Tensor,
    correct: torch.Tensor,
    off_object: Optional[torch.Tensor],
) -> List[Cluster]:
    built = []
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        centre = points[rows].mean(0)
        rows = rows[np.argsort(((points[rows] - centre) ** 2).sum(1), kind="stable")]
        rows_t = torch.from_numpy(rows)
        counts: Dict[str, int] = {}
        for target in targets[rows_t].tolist():
            name = dataset.classes[target]
            counts[name] = counts.get(name, 0) + 1
        counts = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
        shown, method_maps = maps
        mean = shown[rows_t].mean(0)
        mean_focus = float(focus[rows_t].mean())
        method_mean = method_maps[rows_t].mean(0)
        consistency = float(focus_share(method_mean[None])[0]) / mean_focus if mean_focus > 0 else 0.0
        mean_drop = float(drop[rows_t].mean())
        peak = float(mean.max())
        built.append(
            Cluster(
                rank=0,
                indices=tuple(chosen[r] for r in rows.tolist()),
                relpaths=tuple(dataset.relpaths[chosen[r]] for r in rows.tolist()),
                class_counts=counts,
                mean_map=(mean / peak if peak > 0 else mean).numpy().astype(np.float32),
                focus=mean_focus,
                drop=mean_drop,
                place_consistency=min(1.0, consistency),
                accuracy=float(correct[rows_t].mean()),
                shortcut_score=max(0.0, mean_drop),
                off_object=None if off_object is None else float(off_object[rows_t].mean()),
            )
        )
    minimum = max(3, math.ceil(MIN_CLUSTER_SHARE * len(chosen)))
    ordered = sorted(built, key=lambda c: (c.size < minimum, -c.shortcut_score))
    return [Cluster(**{**c.__dict__, "rank": rank}) for rank, c in enumerate(ordered)]
