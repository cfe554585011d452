"""The `report` command: a session's story as one self-contained HTML file.

    python main.py report SESSION --out report.html [--no-model] [--device cpu]

The report (`app.report`) inlines every picture, so the file alone can be mailed or archived;
`--no-model` leaves out the confusion matrix (which runs the final model over the validation
split). Prints one JSON value on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.cli.common import EXIT_OK, add_device_argument
from app.errors import UserError


def cmd_report(args: argparse.Namespace) -> int:
    from app.report import write_report

    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the HTML file to write (e.g. {out / 'report.html'})")
    device = "cpu" if args.device == "auto" else args.device  # a few hundred images: the CPU is quick enough
    path = write_report(args.session, out, with_model=not args.no_model, device_name=device)
    print(json.dumps({"out": str(path), "bytes": path.stat().st_size}, indent=2))
    return EXIT_OK


def add_commands(commands: Any) -> None:
    """Register `report` on the main parser's subparsers."""
    report = commands.add_parser("report", help="write a session's self-contained HTML report (rounds, heatmaps, plots)")
    report.add_argument("session", help="the session folder")
    report.add_argument("--out", required=True, help="the HTML file to write")
    report.add_argument("--no-model", action="store_true", help="leave out the confusion matrix (do not run the model)")
    add_device_argument(report)
    report.set_defaults(handler=cmd_report)
