"""Entry point (`python main.py --help`, or the `saliency-steering` command once installed).

Decides between the desktop app and the command line: the engine's CLI (`app.cli`) parses the
arguments and runs every command except `app`, which it hands back to `open_desktop_app` here,
so the engine never imports tkinter.
"""

import argparse
import sys
from typing import Optional, Sequence

from app.cli.main import main as run_command
from app.errors import UserError


def open_desktop_app(args: argparse.Namespace) -> int:
    # Imported here, not above: only the `app` command needs Tk (and torch), and a Python
    # without tkinter must still run the command line.
    try:
        from ui.desktop import open_desktop_app as open_app
    except ImportError as error:  # tkinter missing from this Python
        raise UserError(f"the desktop app needs Tk ({error}); install python3-tk or use the CLI commands") from error
    return open_app(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(argv, open_desktop_app=open_desktop_app)


if __name__ == "__main__":
    sys.exit(main())
