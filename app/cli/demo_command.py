"""The `demo-data` command: write the shortcut demo data set (scikit-learn digits + a decoy)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from app.cli.common import EXIT_OK, check_seed


def cmd_demo_data(args: argparse.Namespace) -> int:
    from datasets import build_demo_data

    # Built beside --out and renamed when complete: a kill never leaves a partial data set.
    info = build_demo_data(args.out, seed=check_seed(args.seed), shortcut=args.shortcut, vary_size=args.vary_size)
    print(json.dumps(dataclasses.asdict(info) if dataclasses.is_dataclass(info) else str(info), indent=2, default=str))
    return EXIT_OK


def add_demo_command(commands: Any) -> None:
    """Register `demo-data` on the main parser's subparsers."""
    demo = commands.add_parser("demo-data", help="write the shortcut demo data set (scikit-learn digits + decoy swatch)")
    demo.add_argument("--out", required=True)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--shortcut",
        choices=("corner", "moving", "shape"),
        default="corner",
        help="corner: a shaded swatch in a random corner (Decoy MNIST); moving: the swatch "
        "anywhere in the border; shape: a glyph per digit anywhere in the border",
    )
    demo.add_argument("--vary-size", action="store_true", help="moving: a random swatch side of 4-8 pixels per image")
    demo.set_defaults(handler=cmd_demo_data)
