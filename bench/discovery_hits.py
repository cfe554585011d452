"""Does discovery put the shortcut group first? Hit rate over zoo draws.

Per zoo draw (`zoo_models.plain_zoo_model`, small_cnn without masks, 32 px) `main.py discover`'s
engine (`app.explain.discovery.discover`) clusters the training set's explanations. A cluster
is a *shortcut cluster* when at least `--carry` of its members carry the shortcut and its
members' saliency (the discovery's own maps) lies on the shortcut's pixels (grown by one
pixel) at least `--lift` times the pixels' area share on average. A draw is a hit when a
shortcut cluster is ranked first or second (`--top`).

A second count, `seen`, asks whether the user can *see* the shortcut in a group among the first
`--top` (>= `--carry` carrying) in either of the two pictures the window shows per group: its
heatmap, or its `shared_look` (what sets its images apart from the rest of their class). Because
some shortcuts cover so much of the image that no picture can reach `--lift` (a 2-px frame grown
by 1 px covers 34 % of a 32 px image: at most 2.9), the bar there is `min(--lift, --attainable x
the highest lift possible)`, the highest being 1 / the shortcut's area share, averaged over the
carrying members. (Defined 2026-12-08 after a one-off check of the shared look on six draws, so
not blind: docs/discovery.md.) Clusters are made per class (`--clusters`
per class). Prints per draw the ranked clusters
(size, carrying share, lift, score), then the hit count, and writes JSON (`--out`).

    PYTHONPATH=. python bench/discovery_hits.py --draws 0 1 2 3 4 5 6 7 8 9
    PYTHONPATH=. python bench/discovery_hits.py --draws 0 1 2 3 4 5 6 7 8 9 --share-low 0.3 --share-high 0.3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import torch
from zoo_models import plain_zoo_model

from app.explain.discovery import DEFAULT_CLUSTERS, discover


def grown(red: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.max_pool2d(red.float()[:, None], 3, stride=1, padding=1)[:, 0] > 0


def measure(seed: int, args: argparse.Namespace) -> Dict[str, Any]:
    subject = plain_zoo_model(seed, (args.share_low, args.share_high), Path(args.work), epochs=args.epochs)
    train = subject.train
    found = discover(subject.model, train, n_clusters=args.clusters, pool_size=args.pool)
    assert found is not None
    indices = list(found.images.indices)
    red = grown(subject.truth("train", [train.relpaths[i] for i in indices]) > 0)
    side = found.images.maps.shape[-1]
    red_small = torch.nn.functional.adaptive_max_pool2d(red.float()[:, None], side)[:, 0]
    carries = red.flatten(1).any(1)
    area = red_small.flatten(1).mean(1)
    share = (found.images.maps * red_small).flatten(1).sum(1)
    lift = torch.where(carries, share / area.clamp_min(1e-12), torch.zeros_like(share))
    highest = torch.where(carries, 1.0 / area.clamp_min(1e-12), torch.zeros_like(share))
    row_of = {index: row for row, index in enumerate(indices)}
    clusters = []
    for cluster in found.clusters:
        rows = torch.tensor([row_of[i] for i in cluster.indices])
        carrying_rows = rows[carries[rows]]
        look_lift, attainable = 0.0, 0.0
        if len(carrying_rows) and cluster.shared_look is not None:
            look = torch.from_numpy(cluster.shared_look).float()
            look = look / look.sum().clamp_min(1e-12)
            look_lift = float(((look[None] * red_small[carrying_rows]).flatten(1).sum(1) / area[carrying_rows]).mean())
            attainable = float(highest[carrying_rows].mean())
        clusters.append(
            {
                "rank": cluster.rank,
                "size": cluster.size,
                "carrying": round(float(carries[rows].float().mean()), 3),
                "lift": round(float(lift[rows].mean()), 2),
                "look_lift": round(look_lift, 2),
                "attainable": round(attainable, 2),
                "score": round(cluster.shortcut_score, 3),
                "focus": round(cluster.focus, 3),
                "drop": round(cluster.drop, 3),
                "describe": cluster.describe(),
            }
        )
    for c in clusters:
        c["shortcut"] = c["carrying"] >= args.carry and c["lift"] >= args.lift
        bar = min(args.lift, args.attainable * c["attainable"])
        c["seen"] = c["carrying"] >= args.carry and max(c["lift"], c["look_lift"]) >= bar
    hit = any(c["shortcut"] for c in clusters[: args.top])
    seen = any(c["seen"] for c in clusters[: args.top])
    print(
        f"draw {seed}: {subject.draw.describe()}  test {subject.test_accuracy:.3f}  "
        f"{len(indices)} images, carrying {float(carries.float().mean()):.2f}, {found.seconds:.1f} s "
        f"-> {'HIT' if hit else 'miss'}, {'seen' if seen else 'not seen'}",
        flush=True,
    )
    for c in clusters:
        flag = "*" if c["shortcut"] else " "
        print(
            f"  {flag} #{c['rank']} n={c['size']:4d} carrying {c['carrying']:.2f} lift {c['lift']:5.2f} "
            f"look {c['look_lift']:5.2f} of {c['attainable']:5.1f} "
            f"score {c['score']:.3f} focus {c['focus']:.2f} drop {c['drop']:.2f}",
            flush=True,
        )
    return {
        "draw": seed,
        "description": subject.draw.describe(),
        "test_accuracy": subject.test_accuracy,
        "hit": hit,
        "seen": seen,
        "seconds": found.seconds,
        "clusters": clusters,
    }


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--share-low", type=float, default=0.8)
    parser.add_argument("--share-high", type=float, default=1.0)
    parser.add_argument("--clusters", type=int, default=DEFAULT_CLUSTERS)
    parser.add_argument("--pool", type=int, default=None, help="images clustered per draw (default: the whole training set)")
    parser.add_argument("--carry", type=float, default=0.8, help="a shortcut cluster: at least this share carries it")
    parser.add_argument("--lift", type=float, default=3.0, help="... and its saliency on it at this lift or more")
    parser.add_argument(
        "--attainable", type=float, default=0.8, help="'seen': or this share of the highest lift possible, when lower"
    )
    parser.add_argument("--top", type=int, default=2, help="a hit: a shortcut cluster among the first TOP")
    parser.add_argument("--work", default="/tmp/saliency-bench/zoo")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    results = [measure(seed, args) for seed in args.draws]
    hits = sum(r["hit"] for r in results)
    first = sum(bool(r["clusters"]) and r["clusters"][0]["shortcut"] for r in results)
    seen = sum(r["seen"] for r in results)
    print(f"\nshortcut cluster in the first {args.top}: {hits} of {len(results)} draws; first: {first} of {len(results)}")
    print(f"shortcut seen in the heatmap or the shared look of a group in the first {args.top}: {seen} of {len(results)}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
