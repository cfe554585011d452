"""The command line: the same engine as the desktop app, without a window.

`python main.py --help` lists the commands. The desktop app's command (`app`, the default) is
parsed here and handed back to `main.py`, which opens it; nothing in `app` imports tkinter.
Building the parser imports no torch (tests/test_light_imports.py): a command's module loads it
when the command runs.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
from typing import Callable, Optional, Sequence

from app.cli import arguments, training_arguments
from app.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USER_ERROR, USER_OS_ERRORS, one_line
from app.errors import UserError, out_of_memory_message, user_error_types
from app.run.stop_signals import signal_number, stop_signals_once
from datasets.demo_options import SHORTCUTS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Steer an image classifier's attention with painted masks. Without a command, "
        "opens the desktop app on the built-in demo data.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log engine details to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    app = commands.add_parser("app", help="open the desktop app (the default)")
    app.add_argument("--data", help="image folder root/<class>/<image> (default: the built-in demo data)")
    app.add_argument("--session", help="reopen this session folder")
    app.add_argument(
        "--demo",
        choices=SHORTCUTS,
        default="corner",
        help="the built-in demo a blank data folder means: corner (a swatch in a corner), moving "
        "(the swatch anywhere in the border, varying size) or shape (a glyph per digit)",
    )
    app.set_defaults(handler=None)  # main.py opens the desktop app (ui); the engine never imports Tk

    training_arguments.add_training_commands(commands)  # train, evaluate, finetune, demo-data
    arguments.add_workflow_commands(commands)  # discover, select, propagate
    arguments.add_masks_commands(commands)  # masks import, masks export
    arguments.add_report_commands(commands)  # report
    return parser


RESULT_ON_STDOUT = ("evaluate", "select")  # commands whose whole result is what they print


def check_stdout_open(command: str) -> None:
    """UserError when standard output is closed (`main.py evaluate ... >&-`): Python then
    prints into nothing, and evaluate exited 0 with its JSON lost."""
    try:
        if sys.stdout is None:
            raise OSError
        os.fstat(sys.stdout.fileno())
    except io.UnsupportedOperation:  # a stream without a file descriptor (a test's capture) is open
        pass
    except (OSError, ValueError, AttributeError) as error:
        raise UserError(
            f"standard output is closed, so {command}'s result (JSON) would be lost; send it to a file (> result.json)"
        ) from error


def main(argv: Optional[Sequence[str]] = None, open_desktop_app: Optional[Callable[[argparse.Namespace], int]] = None) -> int:
    """Parse `argv` and run its command; the exit code.

    `open_desktop_app(args)` runs the `app` command (and no command at all): `main.py` passes
    `ui.open_desktop_app`, so this package never imports tkinter.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        args = parser.parse_args(["app"] + list(argv or []))
    try:
        if args.command == "app":
            if open_desktop_app is None:
                raise UserError("the desktop app is opened by main.py (or the saliency-steering command), not by app.cli")
            return open_desktop_app(args)
        if args.command in RESULT_ON_STDOUT:
            check_stdout_open(args.command)
        with stop_signals_once():  # SIGTERM (a scheduler) and SIGHUP (a closed terminal) act as Ctrl+C
            code = args.handler(args)
        try:
            if sys.stdout is not None:
                sys.stdout.flush()  # a result that cannot be written is an error, not exit 0
        except BrokenPipeError:
            raise
        except OSError as error:
            raise UserError(f"cannot write the result to standard output: {error.strerror or error}") from error
        return code
    except KeyboardInterrupt as interrupt:
        return EXIT_INTERRUPTED if signal_number(interrupt) == signal.SIGINT else 128 + signal_number(interrupt)
    except BrokenPipeError:  # `main.py evaluate ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
    except OSError as error:
        if error.errno not in USER_OS_ERRORS:
            raise
        where = f" {error.filename}" if error.filename else ""
        print(f"error: cannot read or write{where}: {error.strerror or error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:  # noqa: BLE001 -- user mistakes get one line, bugs a traceback
        if isinstance(error, user_error_types()):
            print(f"error: {one_line(error)}", file=sys.stderr)
            return EXIT_USER_ERROR
        memory = out_of_memory_message(error)
        if memory is not None:
            print(f"error: {memory}", file=sys.stderr)
            return EXIT_USER_ERROR
        raise
