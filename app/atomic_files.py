"""Write a file so that a crash leaves either the old file or the new one, never half of one.

`atomic_open` lives in `datasets.atomic_files` (masks are written the same way and `datasets`
cannot import the engine); this module adds the engine's JSON writer on top of it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from datasets.atomic_files import atomic_open, remove_stale_temp_files

from .finite_guard import finite_or_none

__all__ = ["atomic_open", "remove_stale_temp_files", "write_json_atomic"]


def write_json_atomic(path: os.PathLike | str, payload: Mapping[str, Any]) -> None:
    """`payload` as indented, key-sorted JSON, written atomically. NaN/inf become null (JSON
    has no NaN; `json.dump` would write the invalid tokens NaN/Infinity)."""
    with atomic_open(path, "w", encoding="utf-8") as stream:
        json.dump(finite_or_none(dict(payload)), stream, indent=2, sort_keys=True, allow_nan=False)
