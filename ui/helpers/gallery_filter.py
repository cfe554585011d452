"""What the gallery shows: the training images filtered by class, prediction, reasonability
cell and mask. Pure (no tkinter), so the rules are tested without a display."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

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


@dataclass(frozen=True)
class FolderListing:
    """An image folder as the gallery lists it between rounds: the images it can show, and
    the files with an image's name that are no image (`(relpath, reason)`), which training
    skips too and the gallery leaves out, saying so."""

    entries: List = field(default_factory=list)  # msg.GalleryEntry, without predictions
    unreadable: List[Tuple[str, str]] = field(default_factory=list)


def image_problem(path) -> Optional[str]:
    """Why the file at `path` is no image, or None. Reads the header only (a folder of
    thousands lists in a blink): random bytes under a .jpg name are caught here; a file
    cut short after a good header shows as an unreadable tile when its thumbnail fails."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 -- the header parsed
    except UnidentifiedImageError:
        return "not an image file PIL can read"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:  # SyntaxError: some bad headers
        return f"{type(error).__name__}: {error}"
    return None


def scan_folder(root) -> FolderListing:
    """The images of an image folder (`root/<class>/<image>`, any depth below the class) as
    `GalleryEntry`s without predictions, and its unreadable files: the gallery between
    rounds, when no model answers."""
    from pathlib import Path

    from app.run.messages import GalleryEntry

    root = Path(root)
    listing = FolderListing()
    if not root.is_dir():
        return listing
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(class_dir.rglob("*")):
            relpath = path.relative_to(root).as_posix()
            if (
                path.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in relpath.split("/"))
                and path.is_file()
            ):
                problem = image_problem(path)
                if problem is None:
                    listing.entries.append(GalleryEntry(relpath, class_dir.name, "", float("nan")))
                else:
                    listing.unreadable.append((relpath, problem))
    return listing


def unreadable_text(unreadable: Sequence[Tuple[str, str]], named: int = 3) -> str:
    """The gallery's note on the files it left out ("" when none)."""
    if not unreadable:
        return ""
    names = ", ".join(relpath for relpath, _ in unreadable[:named])
    more = f" and {len(unreadable) - named} more" if len(unreadable) > named else ""
    files = "file" if len(unreadable) == 1 else "files"
    return f"{len(unreadable)} unreadable {files} left out (training skips them too): {names}{more}"
