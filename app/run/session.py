"""A session folder: everything one steering effort produces, so nothing painted is ever lost.

```
<session>/session.json    paths and configs (rewritten atomically when they change)
<session>/masks/          painted and propagated masks (`Session.masks`, their one owner: app.run.mask_folder)
<session>/negatives/      "not this" corrections of content propagation (red = wrongly found)
<session>/checkpoint.pt   the current committed model, saved after every epoch and round
<session>/history.jsonl   one line per feedback round: images, decision, report
```
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import weakref
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from app.engine.config import FinetuneConfig, RunPaths, TrainConfig
from app.errors import CheckpointError, UserError
from app.run.mask_folder import MaskFolder
from app.run.run_lock import LOCK_FILE, FolderLock, acquire_session_lock
from datasets.atomic_files import FILE_MODE, finite_or_none, remove_stale_temp_files, write_json_atomic

logger = logging.getLogger(__name__)

SESSION_FILE = "session.json"
HISTORY_FILE = "history.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
MASKS_DIR = "masks"
NEGATIVES_DIR = "negatives"


def _record_at_end(line: str) -> Optional[Dict[str, Any]]:
    """The JSON object that ends `line` after a torn prefix ('{"round": 2, "ima{"round": 3...}'),
    or None. The earliest '{' from which a whole object reaches the end of the line wins, so a
    nested object is never mistaken for the record."""
    decoder = json.JSONDecoder()
    start = line.find("{", 1)
    while start != -1:
        try:
            value, end = decoder.raw_decode(line, start)
        except ValueError:
            value, end = None, -1
        if isinstance(value, dict) and line[end:].strip() == "":
            return value
        start = line.find("{", start + 1)
    return None


def _resolved(folder: Optional[os.PathLike | str]) -> Optional[str]:
    """An absolute folder path as a session stores it (None and "" stay None)."""
    return str(Path(folder).expanduser().resolve()) if folder else None


def default_sessions_root() -> Path:
    """Where new sessions go: $XDG_DATA_HOME (or ~/.local/share)/saliency-steering/sessions."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "saliency-steering" / "sessions"


def new_session_folder(root: Optional[os.PathLike | str] = None) -> Path:
    """A fresh, not yet existing folder under `root` named by the local time."""
    root = Path(root) if root is not None else default_sessions_root()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = root / stamp
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{stamp}-{suffix}"
    return candidate


@dataclasses.dataclass(frozen=True)
class SessionSummary:
    """One line of the recent-sessions list."""

    folder: str
    train_dir: str  # the data folder
    model: str
    epochs_done: int  # as last recorded by the app
    epochs: int  # the session's planned epochs
    rounds: int  # fine-tune rounds decided (committed or rejected)
    masks: int  # masks in the session (painted and propagated)
    last_used: float  # seconds since the epoch


def recent_sessions(root: Optional[os.PathLike | str] = None, limit: int = 12) -> List[SessionSummary]:
    """The sessions under `root` (default: `default_sessions_root()`), most recently used first,
    at most `limit`; folders that are not (readable) sessions are left out."""
    root = Path(root) if root is not None else default_sessions_root()
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if not (folder / SESSION_FILE).is_file():
            continue
        try:
            found.append(Session.open(folder).summary())
        except (UserError, OSError) as error:
            logger.info("not listed: %s (%s)", folder, error)
    found.sort(key=lambda summary: summary.last_used, reverse=True)
    return found[:limit]


class Session:
    """One session folder; create with `Session.create`, reopen with `Session.open`."""

    def __init__(
        self,
        folder: Path,
        train_dir: str,
        val_dir: Optional[str],
        train_config: TrainConfig,
        finetune_config: FinetuneConfig,
        created: str,
        test_dir: Optional[str] = None,
        epochs_recorded: int = 0,
    ):
        self.folder = Path(folder)
        # The last epoch the app saw finish (kept in session.json so the recent-sessions list
        # need not load every checkpoint); `epochs_done()` reads the checkpoint itself.
        self.epochs_recorded = epochs_recorded
        self.train_dir = train_dir
        self.val_dir = val_dir
        # An optional shortcut-free test folder, evaluated after every epoch: unlike the training
        # and validation folders it only measures, so it may change between runs of a session.
        self.test_dir = test_dir
        self.train_config = train_config
        self.finetune_config = finetune_config
        self.created = created
        # The one owner of the mask folder: the brush window's autosaver and the trainer both write
        # through it (app.run.mask_folder).
        self.masks = MaskFolder(self.masks_dir)
        self._folder_lock: Optional[FolderLock] = None

    # ------------------------------------------------------------------ paths
    @property
    def masks_dir(self) -> Path:
        return self.folder / MASKS_DIR

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / CHECKPOINT_FILE

    @property
    def history_path(self) -> Path:
        return self.folder / HISTORY_FILE

    # ------------------------------------------------------------- lifecycle
    @classmethod
    def create(
        cls,
        folder: os.PathLike | str,
        train_dir: os.PathLike | str,
        val_dir: Optional[os.PathLike | str] = None,
        train_config: TrainConfig = TrainConfig(),
        finetune_config: FinetuneConfig = FinetuneConfig(),
        test_dir: Optional[os.PathLike | str] = None,
    ) -> "Session":
        """Make a new session folder (it must not exist or be empty; its lock file may be there)."""
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or any(p.name != LOCK_FILE for p in folder.iterdir())):
            raise UserError(f"cannot start a session in {folder}: it exists and is not an empty folder")
        lock = acquire_session_lock(folder)  # created, and held like an opened one
        (folder / MASKS_DIR).mkdir(parents=True, exist_ok=True)
        session = cls(
            folder,
            str(Path(train_dir).resolve()),
            _resolved(val_dir),
            train_config,
            finetune_config,
            time.strftime("%Y-%m-%dT%H:%M:%S"),
            _resolved(test_dir),
        )
        session._hold(lock)
        session.save()
        return session

    @classmethod
    def open(cls, folder: os.PathLike | str) -> "Session":
        """Reopen a session folder; UserError when it is not one."""
        folder = Path(folder)
        path = folder / SESSION_FILE
        if not path.is_file():
            raise UserError(f"{folder} is not a session folder (no {SESSION_FILE} in it)")
        lock = acquire_session_lock(folder)  # FolderLockedError: open in another window
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            session = cls(
                folder,
                payload["train_dir"],
                payload.get("val_dir"),
                TrainConfig.from_dict(payload.get("train_config", {})),
                FinetuneConfig.from_dict(payload.get("finetune_config", {})),
                payload.get("created", ""),
                payload.get("test_dir"),
                int(payload.get("epochs_done", 0) or 0),
            )
        except (ValueError, KeyError, TypeError) as error:
            lock.release()
            raise UserError(f"{path} is damaged: {error}") from error
        session._hold(lock)
        session.masks_dir.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_temp_files(folder, recursive=True)  # left by a killed writer
        if removed:
            logger.info("removed %d temp files of interrupted writes in %s", removed, folder)
        return session

    def _hold(self, lock: FolderLock) -> None:
        """Keep the session's lock while this object lives: released by `close()`, or when the
        last reference goes (a window that forgets its session need not remember to)."""
        self._folder_lock = lock
        weakref.finalize(self, lock.release)

    def close(self) -> None:
        """Give this object's hold on the folder back (other windows may open it then)."""
        if self._folder_lock is not None:
            self._folder_lock.release()
            self._folder_lock = None

    def save(self) -> None:
        write_json_atomic(
            self.folder / SESSION_FILE,
            {
                "format_version": 1,
                "created": self.created,
                "train_dir": self.train_dir,
                "val_dir": self.val_dir,
                "test_dir": self.test_dir,
                "epochs_done": self.epochs_recorded,
                "train_config": dataclasses.asdict(self.train_config),
                "finetune_config": dataclasses.asdict(self.finetune_config),
            },
        )

    def update_configs(self, train_config: TrainConfig, finetune_config: Optional[FinetuneConfig] = None) -> None:
        """Store edited settings (e.g. more epochs before resuming)."""
        self.train_config = train_config
        if finetune_config is not None:
            self.finetune_config = finetune_config
        self.save()

    def record_epochs(self, epochs_done: int) -> None:
        """Note the last finished epoch in session.json (what the recent-sessions list shows)."""
        if int(epochs_done) != self.epochs_recorded:
            self.epochs_recorded = int(epochs_done)
            self.save()

    def last_used(self) -> float:
        """When anything of the session was last written (seconds since the epoch)."""
        times = [
            path.stat().st_mtime
            for path in (self.folder / SESSION_FILE, self.checkpoint_path, self.history_path)
            if path.is_file()
        ]
        return max(times, default=0.0)

    def summary(self) -> "SessionSummary":
        """What the recent-sessions list shows of this session (no checkpoint is loaded)."""
        rounds = self.history()
        return SessionSummary(
            folder=str(self.folder),
            train_dir=self.train_dir,
            model=self.train_config.model,
            epochs_done=self.epochs_recorded,
            epochs=self.train_config.epochs,
            rounds=sum(1 for r in rounds if r.get("decision") in ("commit", "reject")),
            masks=len(self.masks.annotated()),
            last_used=self.last_used(),
        )

    def set_test_dir(self, test_dir: Optional[os.PathLike | str]) -> None:
        """Measure on another shortcut-free test folder (None: none) from the next run on."""
        resolved = _resolved(test_dir)
        if resolved != self.test_dir:
            self.test_dir = resolved
            self.save()

    def run_paths(self) -> RunPaths:
        """Where the trainer reads and writes for this session; resumes from its checkpoint."""
        has_checkpoint = self.checkpoint_path.is_file()
        return RunPaths(
            train_dir=self.train_dir,
            val_dir=self.val_dir,
            masks_dir=str(self.masks_dir),
            init_checkpoint=str(self.checkpoint_path) if has_checkpoint else None,
            checkpoint_out=str(self.checkpoint_path),
            resume=has_checkpoint,
            test_dir=self.test_dir,
            negatives_dir=str(self.folder / NEGATIVES_DIR),
        )

    def is_empty(self) -> bool:
        """True while nothing was produced: no checkpoint, no history, no mask (e.g. a Train
        that failed before its first epoch)."""
        return not self.checkpoint_path.is_file() and not self.history_path.is_file() and not self.masks.annotated()

    def discard_if_empty(self) -> bool:
        """Remove the folder of a session that produced nothing (so a failed Train leaves no
        empty session behind); True when removed. Never deletes a file it did not write."""
        if not self.is_empty():
            return False
        self.close()
        try:
            (self.folder / SESSION_FILE).unlink(missing_ok=True)
            (self.folder / LOCK_FILE).unlink(missing_ok=True)  # the trainer's lock, released with it
            for folder in sorted(self.masks_dir.rglob("*"), reverse=True):
                if folder.is_dir():
                    folder.rmdir()  # only empty folders: rmdir refuses anything else
            self.masks_dir.rmdir()
            self.folder.rmdir()
        except OSError as error:
            logger.warning("cannot remove the empty session %s: %s", self.folder, error)
            return False
        return True

    def epochs_done(self) -> int:
        """The last completed epoch recorded in the checkpoint (0 before the first)."""
        history = self.epoch_history()
        return int(history[-1].get("epoch", len(history))) if history else 0

    # --------------------------------------------------------------- history
    def lock(self) -> FolderLock:
        """Hold this session for this process once more (`create` and `open` already hold it
        for the object's life: opening a session in the desktop app did not lock it; the
        trainer takes it too while it runs). Raises `app.run.run_lock.FolderLockedError` (a
        UserError): "this session is open in another window (pid N): ..." when another
        process has it."""
        return acquire_session_lock(self.folder)

    def append_history(self, record: Mapping[str, Any]) -> None:
        """Append one round's record as a JSON line, flushed to disk before returning.

        A line cut short by a crash is terminated first, so it cannot swallow this record.
        """
        line = json.dumps(finite_or_none(dict(record)), sort_keys=True, default=float, allow_nan=False)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:  # never through a link planted in the folder: the user's file at its end would grow
            handle = os.open(self.history_path, flags, FILE_MODE)
        except OSError as error:
            if self.history_path.is_symlink():
                raise UserError(f"{self.history_path} is a symbolic link; not appending through it: remove it") from error
            raise
        with os.fdopen(handle, "a+b") as stream:
            stream.seek(0, os.SEEK_END)
            prefix = b""
            if stream.tell() > 0:
                stream.seek(-1, os.SEEK_END)
                if stream.read(1) != b"\n":
                    prefix = b"\n"
            stream.write(prefix + line.encode("utf-8") + b"\n")
            stream.flush()
            os.fsync(stream.fileno())

    def history(self) -> List[Dict[str, Any]]:
        """All round records. A line cut short by a crash is skipped with a warning; a complete
        record written after it on the same line (by a version that did not terminate the
        torn line first) is still recovered."""
        if not self.history_path.is_file():
            return []
        records = []
        text = self.history_path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                recovered = _record_at_end(line)
                if recovered is not None:
                    records.append(recovered)
                logger.warning(
                    "%s line %d is damaged%s",
                    self.history_path,
                    number,
                    "; its last complete record was kept" if recovered is not None else " and was skipped",
                )
        return records

    def epoch_history(self) -> List[Dict[str, Any]]:
        """Per-epoch metrics stored in the checkpoint (empty before the first epoch)."""
        if not self.checkpoint_path.is_file():
            return []
        # Imported here: reading a checkpoint needs torch, listing and opening sessions does not
        # (the desktop app's window shows before torch is loaded).
        from app.engine.checkpoint import load_checkpoint

        try:
            return load_checkpoint(self.checkpoint_path).history
        except CheckpointError as error:
            logger.warning("cannot read the session checkpoint: %s", error)
            return []
