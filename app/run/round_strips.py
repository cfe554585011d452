"""The before/after panels of each fine-tune round, kept in the session for its report.

When a round's candidate is shown (`FinetuneDone`), its comparisons (the painted images, their
masks, the saliency of the model before and after) are the only record of what the round
changed on the images themselves: the "before" model is gone once the round is decided. So they
are saved, small, as `<session>/rounds/round_<n>.npz` (images shrunk to STRIP_SIDE px, saliency
as float16; a few hundred KB a round), for `app.report` to draw. Saving never fails a round.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from datasets.atomic_files import atomic_open
from datasets.masks import resize_mask

logger = logging.getLogger(__name__)

ROUNDS_DIR = "rounds"
PROPAGATED = "propagated"  # mask meta sources (app.explain.propagation, datasets.mask_formats)
IMPORTED = "imported"
STRIP_SIDE = 160  # long side of the images kept per panel


def strip_path(session_folder: os.PathLike | str, round_number: int) -> Path:
    return Path(session_folder) / ROUNDS_DIR / f"round_{int(round_number):03d}.npz"


def _shrunk(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    scale = STRIP_SIDE / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def mask_sources(store: Any) -> Dict[str, int]:
    """How many masks of a MaskStore are painted by hand, propagated or imported (meta source)."""
    counts: Dict[str, int] = {}
    for relpath in store.annotated():
        source = store.meta(relpath).get("source") or "painted"
        kind = source if source in (PROPAGATED, IMPORTED) else "painted"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def save_round_strip(
    session_folder: os.PathLike | str, round_number: int, comparisons: Sequence[Any], masks: Any = None
) -> Optional[Path]:
    """Save the `messages.Comparison` panels of a round, and with `masks` (the run's MaskStore)
    how many masks of each source the round fine-tuned on (how far its paint propagated); the
    file, or None (nothing to save, or the save failed: logged, the round goes on)."""
    if not comparisons:
        return None
    arrays: Dict[str, np.ndarray] = {}
    labels: List[Dict[str, Any]] = []
    try:
        for number, panel in enumerate(comparisons):
            image = _shrunk(np.asarray(panel.image, dtype=np.uint8))
            arrays[f"image_{number}"] = image
            mask = np.asarray(panel.mask) if panel.mask is not None else np.zeros(image.shape[:2], np.int8)
            arrays[f"mask_{number}"] = resize_mask(mask, image.shape[:2])
            arrays[f"before_{number}"] = np.asarray(panel.saliency_old, dtype=np.float16)
            arrays[f"after_{number}"] = np.asarray(panel.saliency_new, dtype=np.float16)
            labels.append(
                {
                    "relpath": panel.relpath,
                    "true": panel.true_label,
                    "before": [panel.predicted_old, float(panel.confidence_old)],
                    "after": [panel.predicted_new, float(panel.confidence_new)],
                }
            )
        buffer = io.BytesIO()
        counts = json.dumps(mask_sources(masks) if masks is not None else None)
        np.savez_compressed(buffer, labels=np.array(json.dumps(labels)), masks=np.array(counts), **arrays)
        path = strip_path(session_folder, round_number)
        with atomic_open(path, "wb") as file:
            file.write(buffer.getvalue())
        return path
    except Exception:  # noqa: BLE001 -- a record for the report; never worth losing the round
        logger.exception("the panels of round %d were not saved", round_number)
        return None


def load_round_strip(
    session_folder: os.PathLike | str, round_number: int
) -> Tuple[List[Dict[str, Any]], Optional[Dict[str, int]]]:
    """(the saved panels of a round as dicts (relpath, true, before, after, image, mask,
    saliency_before, saliency_after), the masks by source it fine-tuned on or None); ([], None)
    when nothing was saved or the file is unreadable."""
    path = strip_path(session_folder, round_number)
    if not path.is_file():
        return [], None
    try:
        with np.load(path, allow_pickle=False) as data:
            labels = json.loads(str(data["labels"]))
            counts = json.loads(str(data["masks"])) if "masks" in data.files else None
            return [
                {
                    **label,
                    "image": data[f"image_{i}"],
                    "mask": data[f"mask_{i}"],
                    "saliency_before": data[f"before_{i}"].astype(np.float32),
                    "saliency_after": data[f"after_{i}"].astype(np.float32),
                }
                for i, label in enumerate(labels)
            ], counts
    except Exception as error:  # noqa: BLE001 -- a damaged record only loses its pictures
        logger.warning("cannot read %s: %s", path, error)
        return [], None
