"""What every command shares: exit codes, JSON out, the --out folder, argument helpers.

User mistakes print one `error:` line and exit 2 (EXIT_USER_ERROR); a bug prints its traceback
and exits 1 (EXIT_BUG). Torch-free: the parser and `--help` are built with it.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from app.engine.config import AMP_MODES, MAX_SEED, TrainConfig
from app.errors import UserError
from app.run.run_lock import acquire_folder_lock
from datasets.atomic_files import finite_or_none, remove_stale_temp_files, write_json_atomic
from loss import PENALTY_GRADIENTS

EXIT_OK, EXIT_BUG, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
# File-system failures that are the machine's or the user's to fix (disk full, read-only or
# forbidden folder, a path that is a file or too long), printed as one line, not a traceback.
USER_OS_ERRORS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENOENT,
        errno.ELOOP,
        errno.EMFILE,
        errno.EIO,
    }
)


def write_json(path: Path, payload: Any) -> None:
    write_json_atomic(path, payload)


def dumps(payload: Any) -> str:
    """JSON for stdout: NaN/inf become null (json.dumps would print the invalid token NaN)."""
    return json.dumps(finite_or_none(payload), indent=2, allow_nan=False)


def prepare_out(out: Path) -> Any:
    """Create the output folder, lock it against a second writer and clear temp files of a
    killed run; returns the lock (release it when done). UserError when it cannot be used."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder (it is created when missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the --out folder {out}: {error.strerror or error}") from error
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"cannot write in the --out folder {out}: permission denied or read-only")
    lock = acquire_folder_lock(out)
    remove_stale_temp_files(out)
    return lock


COUNTEREXAMPLES_HELP = (
    "penalty only: do not swap the red pixels of masked images with other images' pixels "
    "(by default they are swapped, so what is painted red stops predicting the label)"
)


def check_seed(seed: int) -> int:
    """`seed` when it is a valid --seed (0..MAX_SEED: numpy's seeds are 32-bit; a negative or
    huge seed was a traceback deep in numpy), else UserError."""
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed must be between 0 and {MAX_SEED}, got {seed}")
    return seed


@dataclass(frozen=True)
class LazyHandler:
    """A command's handler, `module.function`, imported when the command runs: the modules that
    run commands import torch, and building the parser (every `--help`) must not."""

    module: str  # e.g. "app.cli.workflow"
    function: str  # e.g. "cmd_select": takes the parsed arguments, returns the exit code

    def __call__(self, args: argparse.Namespace) -> int:
        return getattr(import_module(self.module), self.function)(args)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """--device, as every command that runs a model takes it."""
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")


def add_amp_argument(parser: argparse.ArgumentParser) -> None:
    """--amp, for the commands that train."""
    parser.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="off",
        help="mixed precision: bf16 (GPU or CPU), fp16 (GPU, with loss scaling) or off (float32)",
    )


def add_penalty_gradient_argument(parser: argparse.ArgumentParser) -> None:
    """--penalty-gradient, for the commands that train guided steps."""
    parser.add_argument(
        "--penalty-gradient",
        choices=PENALTY_GRADIENTS,
        default=TrainConfig.penalty_gradient,
        help="how the guidance penalty's parameter gradient is taken: exact (double backward) or "
        "finite_difference (two first-order passes, the same gradient for ReLU networks; "
        "Grad-CAM stays exact) (default %(default)s)",
    )


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())
