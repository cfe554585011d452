"""Write a file so that a crash or a power cut leaves either the old file or the new one.

The one home of atomic writing: masks (`datasets.masks`) and the engine's checkpoints, JSON
files and session files all go through `atomic_open` (`write_json_atomic` for JSON). It lives on
the lowest floor that writes files so that every floor above can import it.

- The temp file sits beside the target (`os.replace` is atomic only within a file system),
  is fsynced before the rename, and the folder is fsynced after it, so the rename itself
  survives a power cut.
- The result gets the mode an ordinary `open()` would give (0666 minus the umask), not
  `mkstemp`'s owner-only 0600.
- The temp file's name carries the writer's pid and a random part, and ends in a tag that is
  a keyed hash of the rest (`.<name>.<pid>.<random>-<tag>.steer.tmp`): a later write removes
  temp files of writers that died (kill -9), but only names this program made. A user's own
  hidden `.notes.draft01.tmp` was once deleted by a looser pattern; no file whose tag does
  not check out, that is not a regular file, or that another user owns is ever removed.
- A long target name is shortened in the temp name (a 242-character image name made the
  temp name longer than the file system's 255 bytes, so that image could never get a mask);
  names that are not valid UTF-8 (undecodable bytes on Linux) are handled as raw bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import stat
from pathlib import Path
from typing import IO, Any, Iterator, List, Mapping, Optional

TEMP_SUFFIX = ".steer.tmp"
MAX_NAME_BYTES = 255  # file name limit of ext4, xfs, btrfs, APFS, NTFS
_TEMP_NAME = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.(?P<random>[0-9a-f]{8})-(?P<tag>[0-9a-f]{8})\.steer\.tmp$", re.DOTALL)
_TAG_KEY = b"saliency-steering temp file\0"  # only names made by temp_name() carry a valid tag


def _read_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


FILE_MODE = 0o666 & ~_read_umask()  # what open() gives a new file in this process


def temp_stem(name: str) -> str:
    """The part of a temp file's name that identifies its target `name`; short enough that
    the whole temp name fits in MAX_NAME_BYTES. Undecodable bytes (surrogate escapes) are kept."""
    raw = os.fsencode(name)
    if len(raw) <= 200:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:12]
    head = raw[:120].decode("utf-8", errors="ignore")
    return f"{head}~{digest}"


def _tag(stem: str, pid: int, random_part: str) -> str:
    return hashlib.sha256(_TAG_KEY + os.fsencode(stem) + f"\0{pid}\0{random_part}".encode()).hexdigest()[:8]


def temp_name(name: str, pid: Optional[int] = None, random_part: Optional[str] = None) -> str:
    """A fresh temp file name for target `name`, recognisable later as this program's own
    (`pid` and `random_part`, 8 hex digits, default to this process and a random draw)."""
    stem = temp_stem(name)
    pid = os.getpid() if pid is None else pid
    random_part = secrets.token_hex(4) if random_part is None else random_part
    return f".{stem}.{pid}.{random_part}-{_tag(stem, pid, random_part)}{TEMP_SUFFIX}"


def _owned_temp(entry: os.DirEntry) -> Optional[re.Match]:
    """The name's match when `entry` is a temp file this program made (valid tag, a regular
    file, ours); None for anything else, which is never touched."""
    match = _TEMP_NAME.match(entry.name)
    if match is None or _tag(match["stem"], int(match["pid"]), match["random"]) != match["tag"]:
        return None
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        return None
    return match


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def stale_temp_files(folder: os.PathLike | str, name: Optional[str] = None) -> List[Path]:
    """Temp files this program made in `folder` whose writers are gone (of target `name`, or
    of any). Files it did not make are never listed, whatever their name or age."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stem = temp_stem(name) if name is not None else None
    stale = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.endswith(TEMP_SUFFIX):
            continue
        match = _owned_temp(entry)
        if match is not None and (stem is None or match["stem"] == stem) and not _pid_alive(int(match["pid"])):
            stale.append(Path(entry.path))
    return stale


def remove_stale_temp_files(folder: os.PathLike | str, name: Optional[str] = None, recursive: bool = False) -> int:
    """Delete what `stale_temp_files` finds (in sub-folders too with `recursive`); returns the
    number removed. Never raises for a file that vanished meanwhile."""
    folders = [Path(folder)]
    if recursive and Path(folder).is_dir():
        for root, dirs, _ in os.walk(folder):  # never into linked folders: not ours to clean
            folders += [Path(root) / d for d in dirs if not (Path(root) / d).is_symlink()]
    removed = 0
    for each in folders:
        for path in stale_temp_files(each, name):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def fsync_folder(folder: os.PathLike | str) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


@contextlib.contextmanager
def atomic_open(
    path: os.PathLike | str, mode: str = "wb", encoding: str | None = None, *, clean_stale: bool = True
) -> Iterator[IO[Any]]:
    """Yield a stream on a temp file beside `path`; on success fsync it, give it the ordinary
    file mode, `os.replace` it into place and fsync the folder; on error delete it. Parent
    folders are created. With `clean_stale`, temp files of dead writers of the same target are
    removed first (a scan of the folder: masks, thousands to a folder, pass False and are swept
    by `remove_stale_temp_files(..., recursive=True)` when a session or mask folder is opened)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean_stale:
        remove_stale_temp_files(path.parent, path.name)
    temp_path = path.parent / temp_name(path.name)
    handle = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        with os.fdopen(handle, mode, encoding=encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_path, FILE_MODE)
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise
    fsync_folder(path.parent)


def finite_or_none(value: object) -> object:
    """JSON has no NaN/Infinity: a non-finite float becomes None (null); containers recurse."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_json_atomic(path: os.PathLike | str, payload: Mapping[str, Any]) -> None:
    """`payload` as indented, key-sorted JSON, written atomically. NaN/inf become null (JSON
    has no NaN; `json.dump` would write the invalid tokens NaN/Infinity)."""
    with atomic_open(path, "w", encoding="utf-8") as stream:
        json.dump(finite_or_none(dict(payload)), stream, indent=2, sort_keys=True, allow_nan=False)
