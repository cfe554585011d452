"""Which saliency method shows the shortcut a model uses? Pointing game and lift over the zoo.

Per zoo draw (`zoo_models.plain_zoo_model`: small_cnn trained without masks, 32 px), the
training images that carry the shortcut (up to `--images`, seeded) are explained for their own
class by every method of `app.explain.saliency.SALIENCY_METHODS`, raw (unclipped) maps:

- pointing: share of images whose map maximum lies on the shortcut's pixels (the truth mask's
  red, grown by one pixel: a coarse map's peak beside a 4-pixel patch still points at it);
- lift: the map's mass on the shortcut over the shortcut's area share (1 = uniform);
- hide: mean drop of the class probability when the map's top 5 % is hidden
  (`app.explain.faithfulness`): does the map point at what the model uses.

Only draws whose plain model uses the shortcut count (shortcut test accuracy <= `--max-test`,
test/ carries a random class's shortcut on every image). Prints one line per draw and method,
then the mean per method over the draws, and writes JSON (`--out`).

    PYTHONPATH=. python bench/saliency_pointing.py --draws 0 1 2 3 4 5 6 7 8 9 --images 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch
from zoo_models import plain_zoo_model

from app.explain.faithfulness import hiding_effect
from app.explain.saliency import SALIENCY_METHODS, saliency_maps


def grown(red: torch.Tensor) -> torch.Tensor:
    """N x H x W bool: red grown by one pixel (3 x 3 max pool)."""
    return torch.nn.functional.max_pool2d(red.float()[:, None], 3, stride=1, padding=1)[:, 0] > 0


def measure(seed: int, args: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    subject = plain_zoo_model(seed, (args.share_low, args.share_high), Path(args.work), epochs=args.epochs)
    train = subject.train
    truth = subject.truth("train", train.relpaths)
    red = truth > 0
    carrying = [i for i in range(len(train)) if bool(red[i].any())]
    generator = torch.Generator().manual_seed(seed)
    chosen = [carrying[i] for i in torch.randperm(len(carrying), generator=generator)[: args.images].tolist()]
    images = torch.stack([train[i][0] for i in chosen])
    targets = torch.tensor([train.targets[i] for i in chosen])
    on_red, target_red = grown(red[chosen]), red[chosen].float()
    area = target_red.flatten(1).mean(1)
    results: Dict[str, Dict[str, float]] = {"_draw": {"test_accuracy": subject.test_accuracy}}  # type: ignore[dict-item]
    print(f"draw {seed}: {subject.draw.describe()}  plain test accuracy {subject.test_accuracy:.3f}", flush=True)
    for method in args.methods:
        started = time.monotonic()
        maps = saliency_maps(subject.model, images, targets, method, normalise=False, n_steps=16)
        peak = maps.flatten(1).argmax(1)
        pointing = on_red.flatten(1).gather(1, peak[:, None])[:, 0].float().mean()
        total = maps.flatten(1).sum(1).clamp_min(1e-30)
        share = (maps * target_red).flatten(1).sum(1) / total
        lift = (share / area).mean()
        hide = hiding_effect(subject.model, images, targets, maps).drop.mean()
        results[method] = {
            "pointing": round(float(pointing), 3),
            "share": round(float(share.mean()), 3),
            "lift": round(float(lift), 2),
            "hide": round(float(hide), 3),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(f"  {method:22s} " + "  ".join(f"{k} {v}" for k, v in results[method].items()), flush=True)
    return results


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--images", type=int, default=100, help="shortcut-carrying training images per draw")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--share-low", type=float, default=0.8)
    parser.add_argument("--share-high", type=float, default=1.0)
    parser.add_argument("--max-test", type=float, default=0.5, help="skip draws whose plain model beats this on test/")
    parser.add_argument("--methods", nargs="+", default=list(SALIENCY_METHODS))
    parser.add_argument("--work", default="/tmp/saliency-bench/zoo")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    per_draw = {}
    for seed in args.draws:
        per_draw[seed] = measure(seed, args)
    counted = [r for r in per_draw.values() if r["_draw"]["test_accuracy"] <= args.max_test]
    print(f"\nmean over {len(counted)} draws whose plain model uses the shortcut (test accuracy <= {args.max_test}):")
    print("| method | pointing | lift | share | hide top 5 % |\n|---|---|---|---|---|")
    summary = {}
    for method in args.methods:
        row = {key: statistics.mean(r[method][key] for r in counted) for key in ("pointing", "lift", "share", "hide")}
        worst = min(r[method]["pointing"] for r in counted)
        summary[method] = {**{k: round(v, 3) for k, v in row.items()}, "worst_pointing": worst}
        cells = f"{row['pointing']:.2f} (worst {worst:.2f}) | {row['lift']:.2f} | {row['share']:.2f} | {row['hide']:.2f}"
        print(f"| {method} | {cells} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"per_draw": per_draw, "summary": summary}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
