"""The `discover`, `select` and `propagate` commands: the feedback workflow of the app, without a window.

    python main.py discover --checkpoint CKPT --data DIR [--clusters K] [--pool N] [--masks DIR]
    python main.py select --checkpoint CKPT --data DIR --k K --strategy NAME [--masks DIR]
    python main.py propagate --checkpoint CKPT --data DIR --masks DIR --scope content|all|class|similar
                             [--source RELPATH ...] [--not-this DIR] [--exclude RELPATH ...] --out DIR

With `train --init`, `finetune` and `evaluate` this makes the whole workflow scriptable: train,
select the images worth painting, paint them (any image editor: red (255,0,0), green
(0,255,0)), propagate, fine-tune, evaluate. Each command prints one JSON value on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, add_device_argument, check_seed
from app.cli.locator_options import add_locator_options, locator_config_of
from app.cli.training import load_model_and_data
from app.errors import UserError
from app.explain.mask_audit import check_masks_folder
from datasets import check_masks_outside


def cmd_discover(args: argparse.Namespace) -> int:
    """Print the JSON of the training set's explanation clusters, shortcut-like first."""
    import sys

    from app.cli.common import dumps
    from app.explain.discovery import discover

    if args.clusters < 1:
        raise UserError(f"--clusters must be at least 1, got {args.clusters}")
    if args.masks is not None and not Path(args.masks).is_dir():
        raise UserError(f"the mask folder {args.masks} does not exist")
    model, data, device = load_model_and_data(args.checkpoint, args.data, args.masks, args.device)

    def progress(done: int, total: int) -> None:
        if args.progress:
            print(f"explained {done} of {total} images", file=sys.stderr, flush=True)

    found = discover(
        model, data, device=device, method=args.method, n_clusters=args.clusters, pool_size=args.pool, seed=args.seed,
        progress=progress,
    )  # fmt: skip
    payload = found.to_json()
    if not args.members:
        for cluster in payload["clusters"]:
            cluster.pop("members")
    print(dumps(payload))
    return EXIT_OK


def cmd_select(args: argparse.Namespace) -> int:
    """Print the JSON list of the chosen images' paths relative to --data, best first."""
    from app.explain.selection import select_images

    if args.k < 1:
        raise UserError(f"--k must be at least 1, got {args.k}")
    check_seed(args.seed)
    locator = locator_config_of(args)
    check_masks_folder(args.masks)  # "is a file", not "does not exist", for a file
    model, data, device = load_model_and_data(args.checkpoint, args.data, args.masks, args.device)
    exclude = []
    if data.masks is not None and not args.include_annotated:
        from app.explain.propagation import hand_painted

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
    from app.explain.propagation import apply_propagation, hand_painted, plan_propagation
    from datasets import MaskStore
    from datasets.atomic_files import remove_stale_temp_files

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


def add_commands(commands: Any) -> None:
    """Register `discover`, `select` and `propagate` on the main parser's subparsers."""
    from app.explain.discovery import DEFAULT_CLUSTERS, DISCOVERY_METHOD
    from app.explain.propagation import DEFAULT_SIMILAR_LIFT, DEFAULT_SIMILAR_SHARE, SCOPES
    from app.explain.saliency import SALIENCY_METHODS
    from app.explain.selection import SELECTION_STRATEGIES

    discover = commands.add_parser(
        "discover", help="group the training images by where the model looks, shortcut-like groups first (JSON)"
    )
    discover.add_argument("--checkpoint", required=True)
    discover.add_argument("--data", required=True, help="training image folder root/<class>/<image>")
    discover.add_argument("--clusters", type=int, default=DEFAULT_CLUSTERS, help="groups per class (k-means)")
    discover.add_argument("--pool", type=int, default=None, help="explain a seeded random N images at most (default: all)")
    discover.add_argument("--method", choices=SALIENCY_METHODS, default=DISCOVERY_METHOD, help="saliency method")
    discover.add_argument("--masks", help="mask folder: green painted there tells how much saliency sits off the object")
    discover.add_argument("--members", action="store_true", help="list every member of each group, not only examples")
    discover.add_argument("--progress", action="store_true", help="report progress on stderr")
    discover.add_argument("--seed", type=int, default=0)
    add_device_argument(discover)
    discover.set_defaults(handler=cmd_discover)

    select = commands.add_parser("select", help="choose the images worth painting; prints their paths as JSON")
    select.add_argument("--checkpoint", required=True)
    select.add_argument("--data", required=True, help="training image folder root/<class>/<image>")
    select.add_argument("--k", type=int, required=True, help="how many images to choose")
    select.add_argument(
        "--strategy",
        choices=SELECTION_STRATEGIES,
        default="unreasonable",
        help="random, entropy (most unsure first), misclassified, unreasonable (explanations "
        "on red of painted images, on regions salient across classes, off the object)",
    )
    select.add_argument("--masks", help="mask folder: its hand-painted images are skipped, its masks inform 'unreasonable'")
    select.add_argument("--include-annotated", action="store_true", help="do not skip images that already have a mask")
    select.add_argument("--reasons", action="store_true", help="print relpath, score and reason per image")
    select.add_argument("--seed", type=int, default=0)
    add_device_argument(select)
    add_locator_options(select)
    select.set_defaults(handler=cmd_select)

    propagate = commands.add_parser("propagate", help="apply painted masks to more images; prints how many (JSON)")
    propagate.add_argument("--checkpoint", required=True, help="the model (its saliency decides 'similar')")
    propagate.add_argument("--data", required=True, help="training image folder the masks belong to")
    propagate.add_argument("--masks", required=True, help="mask folder with the painted masks")
    propagate.add_argument(
        "--scope",
        default="content",
        choices=SCOPES,
        help="content (default): the painted red content found wherever it sits in each image; "
        "positional: all images, the source's class, or images whose saliency sits in the "
        "source's red region (the same pixels)",
    )
    propagate.add_argument(
        "--not-this", metavar="DIR", help="'content': a mask folder whose red marks regions wrongly found ('not this')"
    )
    propagate.add_argument("--exclude", nargs="+", metavar="RELPATH", help="images dropped from the plan")
    propagate.add_argument(
        "--source", nargs="+", metavar="RELPATH", help="painted images to propagate (default: every hand-painted mask in --masks)"
    )
    propagate.add_argument("--out", required=True, help="mask folder to write to (may equal --masks)")
    propagate.add_argument(
        "--similar-share",
        type=float,
        default=DEFAULT_SIMILAR_SHARE,
        help="'similar': share of an image's saliency inside the red region that suffices",
    )
    propagate.add_argument(
        "--similar-lift",
        type=float,
        default=DEFAULT_SIMILAR_LIFT,
        help="'similar': ... or this many times the region's mean share over the images",
    )
    propagate.add_argument("--include-green", action="store_true", help="propagate green as well (off by default)")
    propagate.add_argument("--dry-run", action="store_true", help="only print which images would get a mask")
    add_device_argument(propagate)
    add_locator_options(propagate)
    propagate.set_defaults(handler=cmd_propagate)
