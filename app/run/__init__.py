"""The run protocol the desktop app and the command line drive: the trainer thread (and its
feedback rounds, the commands answered while painting, the items the windows show) and the
messages it exchanges with them, sessions (a run's folder, reopened later) and their locks.
Imports `app.engine`, `app.explain` and below."""

from app.run.run_lock import FolderLock, FolderLockedError, acquire_folder_lock, acquire_session_lock
from app.run.session import Session, default_sessions_root, new_session_folder
from app.run.trainer import Trainer

__all__ = [
    "FolderLock",
    "FolderLockedError",
    "Session",
    "Trainer",
    "acquire_folder_lock",
    "acquire_session_lock",
    "default_sessions_root",
    "new_session_folder",
]
