"""The `demo-data` command: write the shortcut demo data set (scikit-learn digits + a decoy)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from app.cli.common import EXIT_OK, check_seed
from datasets import build_demo_data


def cmd_demo_data(args: argparse.Namespace) -> int:

    # Built beside --out and renamed when complete: a kill never leaves a partial data set.
    info = build_demo_data(args.out, seed=check_seed(args.seed), shortcut=args.shortcut, vary_size=args.vary_size)
    print(json.dumps(dataclasses.asdict(info) if dataclasses.is_dataclass(info) else str(info), indent=2, default=str))
    return EXIT_OK
