"""The run protocol the desktop app and the command line drive: the trainer thread (and its
feedback rounds, the commands answered while painting, the items the windows show) and the
messages it exchanges with them, sessions (a run's folder, reopened later) and their locks.
Imports `app.engine`, `app.explain` and below.

The names below are loaded on first use (PEP 562), so `app.run.messages`, `app.run.run_state`
and `from app.run import FolderLock` stay torch-free; `from app.run import Trainer` imports torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOME = {
    "FolderLock": "run_lock",
    "FolderLockedError": "run_lock",
    "Session": "session",
    "Trainer": "trainer",
    "acquire_folder_lock": "run_lock",
    "acquire_session_lock": "run_lock",
    "default_sessions_root": "session",
    "new_session_folder": "session",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """The public `name`, imported from its module on first use and kept."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
