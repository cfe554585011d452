"""What the gallery shows: the training images filtered by class, prediction, reasonability
cell and mask. Pure (no tkinter), so the rules are tested without a display."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional, Sequence

ANY = "any"
PREDICTIONS = (ANY, "right", "wrong")  # plus "predicted as <class>"
MASKS = (ANY, "has a mask", "no mask")
PREDICTED_AS = "predicted as "


@dataclass(frozen=True)
class GalleryFilter:
    """The gallery's filter; `ANY` everywhere shows every image."""

    label: str = ANY  # true class
    prediction: str = ANY  # "right" | "wrong" | "predicted as <class>"
    cell: str = ANY  # a reasonability cell, e.g. "accurate_unreasonable"
    mask: str = ANY  # "has a mask" | "no mask"


def prediction_choices(classes: Sequence[str]) -> List[str]:
    return list(PREDICTIONS) + [f"{PREDICTED_AS}{name}" for name in classes]


def filter_entries(
    entries: Iterable, chosen: GalleryFilter, cells: Optional[Mapping[str, Iterable[str]]] = None, masked: Iterable[str] = ()
) -> list:
    """The entries (anything with `relpath`, `true_label`, `predicted_label`) that pass.

    `cells`: reasonability cell -> relpaths (images outside the judged pool are in no cell);
    `masked`: relpaths that have a mask."""
    masked = set(masked)
    in_cell = set((cells or {}).get(chosen.cell, ())) if chosen.cell != ANY else None
    kept = []
    for entry in entries:
        if chosen.label != ANY and entry.true_label != chosen.label:
            continue
        predicted = entry.predicted_label
        if chosen.prediction == "right" and predicted != entry.true_label:
            continue
        if chosen.prediction == "wrong" and (not predicted or predicted == entry.true_label):
            continue
        if chosen.prediction.startswith(PREDICTED_AS) and predicted != chosen.prediction[len(PREDICTED_AS) :]:
            continue
        if in_cell is not None and entry.relpath not in in_cell:
            continue
        if chosen.mask == "has a mask" and entry.relpath not in masked:
            continue
        if chosen.mask == "no mask" and entry.relpath in masked:
            continue
        kept.append(entry)
    return kept


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_folder(root) -> list:
    """The images of an image folder (`root/<class>/<image>`, any depth below the class) as
    `GalleryEntry`s without predictions: the gallery between rounds, when no model answers."""
    from pathlib import Path

    from app.run.messages import GalleryEntry

    root = Path(root)
    entries = []
    if not root.is_dir():
        return entries
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(class_dir.rglob("*")):
            relpath = path.relative_to(root).as_posix()
            if (
                path.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in relpath.split("/"))
                and path.is_file()
            ):
                entries.append(GalleryEntry(relpath, class_dir.name, "", float("nan")))
    return entries
