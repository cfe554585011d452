"""Before any paint, does "unreasonable first" pick the images that carry the shortcut?

Per zoo draw (`zoo_models.plain_zoo_model`: small_cnn trained without masks, 32 px; by default
draws where 30 % of the images carry the shortcut), `app.explain.selection.select_images` picks
`--k` training images with the strategy "unreasonable" (no masks: nothing painted yet) and with
"random" (`--random-seeds` seeds). Prints per draw the share of picks that carry the shortcut
for both and their ratio, then the pooled ratio over the draws (all picks of "unreasonable" over
all picks of "random"), and the GRADIA matrix's count of unreasonable images among carrying and
other images (`--matrix`).

    PYTHONPATH=. python bench/unreasonable_first.py --draws 0 1 2 3 4 5 6 7 8 9 --k 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List

import torch
from zoo_models import plain_zoo_model

from app.explain.reasonability import reasonability_matrix
from app.explain.selection import select_images


def measure(seed: int, args: argparse.Namespace) -> Dict[str, Any]:
    subject = plain_zoo_model(seed, (args.share_low, args.share_high), Path(args.work), epochs=args.epochs)
    train = subject.train
    red = subject.truth("train", train.relpaths) > 0
    carries = {r: bool(red[i].any()) for i, r in enumerate(train.relpaths)}
    picks = select_images(subject.model, train, args.k, "unreasonable", pool_size=args.pool)
    hits = sum(carries[c.relpath] for c in picks)
    random_hits = []
    for random_seed in range(args.random_seeds):
        chosen = select_images(subject.model, train, args.k, "random", seed=random_seed, pool_size=args.pool)
        random_hits.append(sum(carries[c.relpath] for c in chosen))
    result = {
        "draw": seed,
        "description": subject.draw.describe(),
        "test_accuracy": subject.test_accuracy,
        "carrying_share": round(sum(carries.values()) / len(carries), 3),
        "unreasonable": hits / len(picks),
        "random": statistics.mean(random_hits) / args.k,
        "reasons": [c.reason for c in picks[:3]],
    }
    if args.matrix:
        matrix = reasonability_matrix(subject.model, train, pool_size=args.pool)
        unreasonable = set(matrix.members["accurate_unreasonable"]) | set(matrix.members["inaccurate_unreasonable"])
        judged = [r for cell in matrix.members.values() for r in cell]
        carrying = [r for r in judged if carries[r]]
        others = [r for r in judged if not carries[r]]
        result["matrix_unreasonable_carrying"] = round(sum(r in unreasonable for r in carrying) / max(1, len(carrying)), 3)
        result["matrix_unreasonable_others"] = round(sum(r in unreasonable for r in others) / max(1, len(others)), 3)
    print(
        f"draw {seed}: {subject.draw.describe()}  test {subject.test_accuracy:.3f}  carrying {result['carrying_share']:.2f}  "
        f"unreasonable {result['unreasonable']:.2f}  random {result['random']:.2f}"
        + (
            f"  matrix: unreasonable {result['matrix_unreasonable_carrying']:.2f} of carrying, "
            f"{result['matrix_unreasonable_others']:.2f} of others"
            if args.matrix
            else ""
        ),
        flush=True,
    )
    print(f"    first reason: {result['reasons'][0]}", flush=True)
    return result


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--k", type=int, default=8, help="images per round")
    parser.add_argument("--pool", type=int, default=512, help="images scored per draw")
    parser.add_argument("--random-seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--share-low", type=float, default=0.3)
    parser.add_argument("--share-high", type=float, default=0.3)
    parser.add_argument("--matrix", action="store_true", help="also the reasonability matrix per draw")
    parser.add_argument("--work", default="/tmp/saliency-bench/zoo")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    results = [measure(seed, args) for seed in args.draws]
    unreasonable = statistics.mean(r["unreasonable"] for r in results)
    random = statistics.mean(r["random"] for r in results)
    wins = sum(r["unreasonable"] >= 2 * r["random"] for r in results)
    print(
        f"\nshare of picks carrying the shortcut over {len(results)} draws: unreasonable {unreasonable:.3f}, "
        f"random {random:.3f}, ratio {unreasonable / max(random, 1e-9):.2f}; >= 2x random on {wins} draws"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
