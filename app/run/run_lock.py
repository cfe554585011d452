"""One writer per run or session folder: an OS file lock that dies with its process.

Two `train` runs on one `--out` left one run's `model.pt` beside the other's `metrics.json`; a
session opened in two windows interleaved `history.jsonl` and lost one run's epochs. Each
writer now holds `fcntl.flock` on `<folder>/.lock` while it writes. The kernel drops the lock
when the process ends however it ends (kill -9, power loss), so a crash never leaves a stale
lock to clean up; the pid written into the file only makes the message useful.

Within one process the lock is re-entrant (counted per folder), so the CLI can hold a run
folder's lock while the trainer it starts takes it again, and a test can open a session it
created.

Engine API for the UI (see `acquire_folder_lock`):

    from app.run.run_lock import FolderLockedError, acquire_session_lock
    try:
        lock = acquire_session_lock(session.folder)   # when opening / creating a session
    except FolderLockedError as error:
        show(str(error))   # "this session is open in another window (pid 1234): ..."
    ...
    lock.release()                                    # when the window closes

On systems without `fcntl` (Windows) locking is skipped with a log line.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Dict, Optional, Tuple

from app.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
SESSION = "session"
RUN = "run"

_HELD_GUARD = threading.Lock()


class FolderLockedError(UserError):
    """Another process writes to this folder; `pid` is that process (None when unknown)."""

    def __init__(self, message: str, pid: Optional[int] = None):
        super().__init__(message)
        self.pid = pid


class _Held:
    """The open lock file of one folder in this process, with a use count."""

    def __init__(self, handle: int):
        self.handle = handle
        self.count = 0


# realpath of a folder -> its lock held by this process. Process-wide on purpose: flock is
# per open file, so two handles of one process on one folder would lock each other out.
_held: Dict[str, _Held] = {}


def _read_pid(path: Path) -> Optional[int]:
    try:
        text = path.read_text(encoding="utf-8").split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


class FolderLock:
    """A held lock on a folder; `release()` (or leaving a `with` block) gives it back."""

    def __init__(self, key: str, folder: Path, kind: str):
        self._key = key
        self.folder = folder
        self.kind = kind
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        with _HELD_GUARD:
            held = _held.get(self._key)
            if held is None:
                return
            held.count -= 1
            if held.count > 0:
                return
            del _held[self._key]
        try:
            if fcntl is not None:
                fcntl.flock(held.handle, fcntl.LOCK_UN)
        finally:
            os.close(held.handle)

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _message(folder: Path, kind: str, pid: Optional[int]) -> str:
    who = f"pid {pid}" if pid is not None else "another process"
    if kind == SESSION:
        return f"this session is open in another window ({who}): {folder}; close it there first, or open a copy of the folder"
    return f"another run is writing to {folder} ({who}); wait for it to finish or choose another --out folder"


def _open_lock_file(path: Path, folder: Path) -> int:
    """Open (create) the lock file without ever following a link: a `.lock` planted as a
    symbolic or hard link to another file would have had that file's contents replaced by a
    pid (anyone who can write in a shared run folder could make the user overwrite any file the
    user can write). UserError for such a lock file or an unwritable folder."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        handle = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP or path.is_symlink():
            raise UserError(
                f"{path} is a symbolic link, not this program's lock file; it was not followed or "
                f"changed: remove the link (or choose another folder)"
            ) from error
        raise UserError(f"cannot write in {folder}: {error.strerror}") from error
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(handle)
        what = "not a regular file" if not stat.S_ISREG(info.st_mode) else "a hard link to another file"
        raise UserError(
            f"{path} is {what}, not this program's lock file; it was not changed: remove it (or choose another folder)"
        )
    return handle


def acquire_folder_lock(folder: os.PathLike | str, kind: str = RUN) -> FolderLock:
    """Lock `folder` (created if missing) for writing by this process.

    Raises FolderLockedError (a UserError) naming the other process when another process holds
    it; re-entrant within this process. `kind` (RUN or SESSION) only chooses the message.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:
        raise UserError(f"{folder} exists and is not a folder") from error
    key = os.path.realpath(folder)
    with _HELD_GUARD:
        held = _held.get(key)
        if held is not None:
            held.count += 1
            return FolderLock(key, folder, kind)
        path = Path(key) / LOCK_FILE
        handle = _open_lock_file(path, folder)
        if fcntl is None:  # pragma: no cover - Windows
            logger.info("no fcntl here: %s is not locked", folder)
        else:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (BlockingIOError, PermissionError) as error:
                os.close(handle)
                pid = _read_pid(path)
                raise FolderLockedError(_message(folder, kind, pid), pid) from error
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        held = _Held(handle)
        held.count = 1
        _held[key] = held
    return FolderLock(key, folder, kind)


def acquire_session_lock(folder: os.PathLike | str) -> FolderLock:
    """`acquire_folder_lock` with the session message ("open in another window, pid N")."""
    return acquire_folder_lock(folder, SESSION)


def lock_holder(folder: os.PathLike | str) -> Tuple[bool, Optional[int]]:
    """(locked by another process, its pid) without taking the lock for long."""
    try:
        lock = acquire_folder_lock(folder)
    except FolderLockedError as error:
        return True, error.pid
    lock.release()
    return False, None
