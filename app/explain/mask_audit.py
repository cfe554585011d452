"""Say so when the masks given for a run cannot guide it.

`--masks` with a typo, a folder laid out for other images, or masks with no red and no green
used to give an unguided run without a word (`train_n_annotated` 0, or "45 annotated" with
nothing painted). `check_masks_folder` refuses a mask folder that does not exist;
`audit_masks` finds the mask files that belong to no image of the data and the masks with
nothing recognisable in them (neither pure red nor pure green anywhere), and `warn_about_masks`
logs one warning per problem naming the files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from app.errors import UserError
from datasets.masks import MASK_SUFFIX, _mask_key

logger = logging.getLogger(__name__)

AUDIT_MAX_MASKS = 2000  # masks whose content is read (each is a small PNG decode)
NAMES_SHOWN = 5


@dataclass
class MaskAudit:
    n_files: int = 0  # mask files in the folder (hidden and temp files left out)
    n_matched: int = 0  # of them, masks of an image in the data
    unmatched: List[str] = field(default_factory=list)  # mask files that belong to no image
    blank: List[str] = field(default_factory=list)  # masks with no red or green pixel
    unreadable: List[str] = field(default_factory=list)  # mask files that cannot be decoded


def _names(names: List[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown if len(names) <= NAMES_SHOWN else f"{shown} and {len(names) - NAMES_SHOWN} more"


def check_masks_folder(masks_dir: Optional[str], option: str = "--masks") -> None:
    """UserError when a mask folder is given but is not an existing folder."""
    if masks_dir is None:
        return
    path = Path(masks_dir).expanduser()
    if not path.exists():
        raise UserError(f"the mask folder {masks_dir} ({option}) does not exist; check the path")
    if not path.is_dir():
        raise UserError(f"{option} {masks_dir} is a file, not a folder of masks")


def audit_masks(data: Any) -> MaskAudit:
    """Look at `data.masks` (an ImageFolderData's MaskStore) against `data.relpaths`."""
    audit = MaskAudit()
    store = getattr(data, "masks", None)
    if store is None or not Path(store.masks_dir).is_dir():
        return audit
    keys = {_mask_key(relpath): relpath for relpath in data.relpaths}
    root = Path(store.masks_dir)
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") or not name.lower().endswith(MASK_SUFFIX):
                continue
            key = (Path(folder) / name).relative_to(root).as_posix()
            audit.n_files += 1
            relpath = keys.get(key)
            if relpath is None:
                audit.unmatched.append(key)
                continue
            audit.n_matched += 1
            if audit.n_matched > AUDIT_MAX_MASKS:
                continue
            try:
                values = store.load_array(relpath)
            except Exception:  # noqa: BLE001 -- any decoding failure is an unreadable mask
                audit.unreadable.append(key)
                continue
            if values is not None and not values.any():
                audit.blank.append(key)
    audit.unmatched.sort()
    audit.blank.sort()
    return audit


def warn_about_masks(data: Any, what: str = "the training images") -> MaskAudit:
    """Log a warning for every kind of problem `audit_masks` finds; returns the audit."""
    audit = audit_masks(data)
    store = getattr(data, "masks", None)
    if store is None:
        return audit
    where = store.masks_dir
    if audit.n_files == 0:
        logger.warning("the mask folder %s holds no masks (<masks>/<class>/<image>.png): the run is unguided", where)
    elif audit.n_matched == 0:
        logger.warning(
            "none of the %d masks in %s belongs to %s (expected <masks>/<class>/<image>.png), e.g. %s: the run is unguided",
            audit.n_files,
            where,
            what,
            _names(audit.unmatched),
        )
    elif audit.unmatched:
        logger.warning(
            "%d masks in %s belong to no image of %s and are ignored: %s",
            len(audit.unmatched),
            where,
            what,
            _names(audit.unmatched),
        )
    if audit.blank:
        logger.warning(
            "%d masks in %s have no red (255,0,0) or green (0,255,0) pixel and guide nothing: %s",
            len(audit.blank),
            where,
            _names(audit.blank),
        )
    if audit.unreadable:
        logger.warning("%d masks in %s cannot be read: %s", len(audit.unreadable), where, _names(audit.unreadable))
    return audit
