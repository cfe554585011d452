"""The `discover`, `select` and `propagate` commands: the feedback workflow of the app, without a window.

    python main.py discover --checkpoint CKPT --data DIR [--clusters K] [--pool N] [--masks DIR]
    python main.py select --checkpoint CKPT --data DIR --k K --strategy NAME [--masks DIR]
    python main.py propagate --checkpoint CKPT --data DIR --masks DIR --scope content|all|class|similar
                             [--source RELPATH ...] [--not-this DIR] [--exclude RELPATH ...] --out DIR

With `train --init`, `finetune` and `evaluate` this makes the whole workflow scriptable: train,
select the images worth painting, paint them (any image editor: red (255,0,0), green
(0,255,0)), propagate, fine-tune, evaluate. Each command prints one JSON value on stdout.
Their arguments are in `app.cli.arguments`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from app.cli.common import EXIT_OK, check_seed, dumps
from app.cli.evaluate_command import load_model_and_data
from app.cli.locator_options import locator_config_of
from app.errors import UserError
from app.explain.discovery import discover
from app.explain.mask_audit import check_masks_folder
from app.explain.propagation import apply_propagation, hand_painted, plan_propagation
from app.explain.selection import select_images
from datasets import MaskStore, check_masks_outside
from datasets.atomic_files import remove_stale_temp_files


def cmd_discover(args: argparse.Namespace) -> int:
    """Print the JSON of the training set's explanation clusters, shortcut-like first."""
    if args.clusters < 1:
        raise UserError(f"--clusters must be at least 1, got {args.clusters}")
    if args.masks is not None and not Path(args.masks).is_dir():
        raise UserError(f"the mask folder {args.masks} does not exist")
    model, data, device = load_model_and_data(args.checkpoint, args.data, args.masks, args.device)

    def progress(done: int, total: int) -> None:
        if args.progress:
            print(f"explained {done} of {total} images", file=sys.stderr, flush=True)

    found = discover(
        model, data, device=device, method=args.method, display_method=args.display_method, n_clusters=args.clusters,
        pool_size=args.pool, seed=args.seed, progress=progress,
    )  # fmt: skip
    payload = found.to_json()
    if not args.members:
        for cluster in payload["clusters"]:
            cluster.pop("members")
    print(dumps(payload))
    return EXIT_OK


def cmd_select(args: argparse.Namespace) -> int:
    """Print the JSON list of the chosen images' paths relative to --data, best first."""
    if args.k < 1:
        raise UserError(f"--k must be at least 1, got {args.k}")
    check_seed(args.seed)
    locator = locator_config_of(args)
    check_masks_folder(args.masks)  # "is a file", not "does not exist", for a file
    model, data, device = load_model_and_data(args.checkpoint, args.data, args.masks, args.device)
    exclude = []
    if data.masks is not None and not args.include_annotated:
        exclude = hand_painted(data.masks)
    choices = select_images(
        model, data, args.k, args.strategy, device=device, seed=args.seed, exclude=exclude, locator_config=locator
    )
    if args.reasons:
        print(json.dumps([{"relpath": c.relpath, "score": c.score, "reason": c.reason} for c in choices], indent=2))
    else:
        print(json.dumps([c.relpath for c in choices], indent=2))
    return EXIT_OK


def cmd_propagate(args: argparse.Namespace) -> int:
    """Write propagated masks to --out and print how many (JSON)."""
    check_masks_folder(args.masks)
    check_masks_folder(args.not_this, "--not-this")
    for option, value in (("--similar-share", args.similar_share), ("--similar-lift", args.similar_lift)):
        if not math.isfinite(value):  # before the model and the data scan: nan planned 0 images
            raise UserError(f"{option} must be a finite number, got {value}")
    locator = locator_config_of(args)
    check_masks_outside(Path(args.out), Path(args.data), "--out")  # masks written among the images
    if Path(args.out).is_dir() and not args.dry_run:  # temp masks of a killed earlier run (a dry run writes nothing)
        remove_stale_temp_files(args.out, recursive=True)
    model, data, device = load_model_and_data(args.checkpoint, args.data, args.masks, args.device)
    source_store = data.masks
    target_store = source_store if Path(args.out).resolve() == Path(args.masks).resolve() else MaskStore(args.out, data.relpaths)
    sources = list(args.source) if args.source else hand_painted(source_store)
    if not sources:
        raise UserError(f"{args.masks} has no hand-painted mask to propagate; paint one or name it with --source")
    negative_store = None
    if args.not_this is not None:
        negative_store = MaskStore(args.not_this, data.relpaths)
    plan = plan_propagation(
        data,
        sources,
        args.scope,
        source_store=source_store,
        target_store=target_store,
        model=model,
        device=device,
        similar_share=args.similar_share,
        similar_lift=args.similar_lift,
        include_green=args.include_green,
        negative_store=negative_store,
        locator_config=locator,
        excluded=args.exclude or (),
    )
    if args.dry_run:
        result = {"would_write": plan.count, "images": plan.ranked()}
        if plan.confidence:
            result["confidence"] = {r: round(plan.confidence[r], 3) for r in plan.ranked()}
    else:
        outcome = apply_propagation(data, plan, source_store=source_store, target_store=target_store)
        result = {"written": outcome.written, "removed": outcome.removed}
    result.update(
        {
            "scope": args.scope,
            "sources": list(plan.sources),
            "skipped_hand_painted": len(plan.skipped_hand_painted),
            "out": str(args.out),
            "examined": plan.candidates,
        }
    )
    if args.scope == "content":
        result.update({"threshold": round(plan.threshold, 3), "iou_on_sources": round(plan.source_iou, 3)})
    print(json.dumps(result, indent=2))
    return EXIT_OK
