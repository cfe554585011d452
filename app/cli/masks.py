"""The `masks import` and `masks export` commands: masks to and from other annotation tools.

    python main.py masks import SOURCE (--session DIR | --data DIR --masks DIR)
                   [--format auto|binary|coco|label-studio] [--as red|green]
                   [--red NAME ...] [--green NAME ...] [--strip-suffix TEXT]
                   [--overwrite | --merge] [--skip-unmatched] [--dry-run]
    python main.py masks export (--session DIR | --data DIR --masks DIR) --format coco|binary --out PATH

SOURCE is a folder of binary masks (white = the region; `--as` says which colour), a COCO JSON
file or a Label Studio JSON export (`--red`/`--green` name the categories or labels). Every
annotation is read and checked before the first mask is written; hand-painted masks are kept
unless `--overwrite` or `--merge`. Each command prints one JSON value on stdout; progress bars go
to stderr. Their arguments are in `app.cli.arguments`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from tqdm import tqdm

from app.cli.common import EXIT_OK
from app.errors import UserError
from app.run.session import Session
from datasets.mask_formats import (
    DataImages,
    apply_import,
    detect_format,
    existing_hand_painted,
    export_binary_folders,
    export_coco,
    read_binary_folder,
    read_coco,
    read_label_studio,
)
from datasets.masks import GREEN, RED, MaskStore


def _bar(description: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """(progress(done, total), close()) drawing a tqdm bar on stderr."""
    state: dict = {"bar": None}

    def progress(done: int, total: int) -> None:
        if state["bar"] is None:
            state["bar"] = tqdm(
                total=total, desc=description, unit="mask", file=sys.stderr, mininterval=0.2, disable=not sys.stderr.isatty()
            )
        state["bar"].n = done
        state["bar"].refresh() if done == total else state["bar"].update(0)

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    return progress, close


def _target(args: argparse.Namespace) -> tuple[Path, Path, Any]:
    """(data folder, mask folder, the session's lock or None) from --session or --data/--masks."""
    if args.session:
        if args.data or args.masks:
            raise UserError("give either --session or --data with --masks, not both")
        session = Session.open(args.session)
        return Path(session.train_dir), session.masks_dir, session.lock()
    if not args.data or not args.masks:
        raise UserError("say where the masks go: --session DIR, or --data DIR with --masks DIR")
    if Path(args.masks).exists() and not Path(args.masks).is_dir():
        raise UserError(f"--masks {args.masks} is a file; give a folder (it is created when missing)")
    return Path(args.data), Path(args.masks), None


def read_plan(args: argparse.Namespace, images: Any, progress: Optional[Callable[[int, int], None]] = None) -> Any:
    """The ImportPlan of SOURCE (nothing written)."""
    fmt = detect_format(args.source) if args.format == "auto" else args.format
    if fmt == "binary":
        if args.red or args.green:
            raise UserError("a folder of binary masks has no labels: say its colour with --as red|green, not --red/--green")
        if args.colour is None:
            raise UserError(
                "say what the white of the binary masks is: --as green (the object) or --as red (a shortcut to ignore)"
            )
        return read_binary_folder(
            args.source, images, RED if args.colour == "red" else GREEN, skip_unmatched=args.skip_unmatched, progress=progress
        )
    if args.colour is not None:
        raise UserError(f"--as is for folders of binary masks; a {fmt} file names its labels: use --red NAME / --green NAME")
    reader = read_coco if fmt == "coco" else read_label_studio
    return reader(args.source, images, args.red or [], args.green or [], skip_unmatched=args.skip_unmatched, progress=progress)


def cmd_import(args: argparse.Namespace) -> int:
    data, masks_dir, lock = _target(args)
    try:
        images = DataImages.scan(data, strip_suffix=args.strip_suffix)
        progress, close = _bar("reading")
        try:
            plan = read_plan(args, images, progress)
        finally:
            close()
        store = MaskStore(masks_dir, images.relpaths)
        result: dict = plan.summary()
        on_existing = "overwrite" if args.overwrite else "merge" if args.merge else "skip"
        if args.dry_run:
            kept = existing_hand_painted(plan, store) if on_existing == "skip" else []
            result.update({"would_write": len(plan.masks) - len(kept), "would_keep_existing": kept})
        else:
            progress, close = _bar("writing")
            try:
                outcome = apply_import(plan, store, on_existing, progress)
            finally:
                close()
            result.update(outcome.summary())
            result["masks"] = str(masks_dir)
            if outcome.kept:
                print(
                    f"kept {len(outcome.kept)} hand-painted masks as they were (--overwrite replaces them, "
                    "--merge paints the import where they are unmarked)",
                    file=sys.stderr,
                )
    finally:
        if lock is not None:
            lock.release()
    print(json.dumps(result, indent=2))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    data, masks_dir, lock = _target(args)
    out = Path(args.out)
    try:
        if args.format == "coco":
            if out.is_dir():
                raise UserError(f"--out {out} is a folder; COCO export writes one JSON file")
            if out.exists() and not args.overwrite:
                raise UserError(f"{out} exists; give another --out or --overwrite")
        else:
            if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not args.overwrite)):
                raise UserError(f"--out {out} is not an empty folder; give another one or --overwrite")
        images = DataImages.scan(data)
        store = MaskStore(masks_dir, images.relpaths)
        if not store.annotated():
            raise UserError(f"{masks_dir} holds no masks to export")
        progress, close = _bar("exporting")
        try:
            if args.format == "coco":
                result = export_coco(store, images, out, progress=progress)
            else:
                result = {"files": export_binary_folders(store, images, out, progress=progress)}
        finally:
            close()
    finally:
        if lock is not None:
            lock.release()
    result.update({"format": args.format, "out": str(out)})
    print(json.dumps(result, indent=2))
    return EXIT_OK
