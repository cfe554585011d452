"""Write a file so that a crash leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Mapping


@contextlib.contextmanager
def atomic_open(path: os.PathLike | str, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Yield a stream on a temp file beside `path`; on success fsync it and `os.replace` it
    into place, on error delete it. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, mode, encoding=encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise


def write_json_atomic(path: os.PathLike | str, payload: Mapping[str, Any]) -> None:
    """`payload` as indented, key-sorted JSON, written atomically."""
    with atomic_open(path, "w", encoding="utf-8") as stream:
        json.dump(payload, stream, indent=2, sort_keys=True)
