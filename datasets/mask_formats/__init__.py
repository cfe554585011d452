"""Masks to and from other annotation tools: binary mask folders, COCO JSON, Label Studio.

Import: a reader (`read_binary_folder`, `read_coco`, `read_label_studio`) decodes and checks
everything into an `ImportPlan` (nothing written yet); `apply_import` writes it into a
`MaskStore`, keeping hand-painted masks unless asked. Export: `export_coco`,
`export_binary_folders`. `detect_format` tells the three inputs apart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import DatasetError
from .binary_export import export_binary_folders
from .binary_folder import read_binary_folder
from .coco import export_coco, read_coco
from .import_plan import (
    IMPORTED,
    ON_EXISTING,
    DataImages,
    ImportedMask,
    ImportOutcome,
    ImportPlan,
    apply_import,
    existing_hand_painted,
)
from .label_studio import read_label_studio

FORMATS = ("binary", "coco", "label-studio")


def detect_format(source: str | os.PathLike) -> str:
    """ "binary" for a folder, "coco" for a JSON object with images and annotations,
    "label-studio" for a JSON list of tasks; DatasetError when it is none of them."""
    source = Path(source)
    if source.is_dir():
        return "binary"
    if not source.is_file():
        raise DatasetError(f"{source} does not exist.")
    with open(source, "rb") as file:
        head = file.read(4096).decode("utf-8-sig", errors="replace").lstrip()
    if head.startswith("["):
        return "label-studio"
    if head.startswith("{"):
        return "coco" if '"images"' in head or '"annotations"' in head or _is_coco(source) else "label-studio"
    raise DatasetError(f"{source} is neither a folder of masks nor a JSON file (COCO or Label Studio).")


def _is_coco(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        return True  # the COCO reader reports the broken JSON
    return isinstance(data, dict) and "images" in data


__all__ = [
    "FORMATS",
    "IMPORTED",
    "ON_EXISTING",
    "DataImages",
    "ImportOutcome",
    "ImportPlan",
    "ImportedMask",
    "apply_import",
    "detect_format",
    "existing_hand_painted",
    "export_binary_folders",
    "export_coco",
    "read_binary_folder",
    "read_coco",
    "read_label_studio",
]
