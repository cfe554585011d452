"""The `report` command: a session's story as one self-contained HTML file.

    python main.py report SESSION --out report.html [--no-model] [--device cpu]

The report (`app.report`) inlines every picture, so the file alone can be mailed or archived;
`--no-model` leaves out the confusion matrix (which runs the final model over the validation
split). Prints one JSON value on stdout. Its arguments are in `app.cli.arguments`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.common import EXIT_OK
from app.errors import UserError
from app.report import write_report


def cmd_report(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the HTML file to write (e.g. {out / 'report.html'})")
    device = "cpu" if args.device == "auto" else args.device  # a few hundred images: the CPU is quick enough
    path = write_report(args.session, out, with_model=not args.no_model, device_name=device)
    print(json.dumps({"out": str(path), "bytes": path.stat().st_size}, indent=2))
    return EXIT_OK
