"""Scanning an image folder in torchvision's layout (`root/<class>/<image>`) without its traps.

The class folders and the image files under them, with every mistake in the layout raised as a
DatasetError that says what to fix: a missing, empty or flat folder, class folders that are links
to one another, a mask folder inside the image folder, folder links that lead back in (torchvision
follows them all, so one loop multiplied the images fortyfold).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath
from typing import Sequence

from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

from .errors import DatasetError

# The scan's warnings keep the image folder's logger name: the main window filters that one out,
# since RunStarted lists the skipped files itself.
log = logging.getLogger("datasets.image_folder")

# Printed in messages so a person knows which files count as images.
EXTENSIONS_TEXT = ", ".join(IMG_EXTENSIONS)
# How many example names a message lists before "and N more".
_EXAMPLES = 5


def examples(names: Sequence[str]) -> str:
    """'a, b, c' or 'a, b, c, d, e and 7 more'."""
    shown = ", ".join(str(n) for n in names[:_EXAMPLES])
    return shown if len(names) <= _EXAMPLES else f"{shown} and {len(names) - _EXAMPLES} more"


def is_hidden(relpath: str) -> bool:
    return any(part.startswith(".") for part in PurePosixPath(relpath).parts)


def _check_root(root: Path, what: str) -> None:
    """DatasetError unless `root` is an existing, non-empty folder."""
    if not root.exists():
        raise DatasetError(f"The {what} {root} does not exist. Check the path.")
    if not root.is_dir():
        raise DatasetError(f"The {what} {root} is a file, not a folder. Give the folder that holds one sub-folder per class.")
    try:
        entries = [e.name for e in os.scandir(root) if not e.name.startswith(".")]
    except OSError as error:
        raise DatasetError(f"The {what} {root} cannot be read: {error.strerror}.") from None
    if not entries:
        raise DatasetError(
            f"The {what} {root} is empty. Put the images in one sub-folder per class, e.g. root/cat/1.jpg, root/dog/2.jpg."
        )


def scan_classes(root: Path, what: str) -> list[str]:
    """Class folder names under `root` (sorted, hidden folders left out)."""
    _check_root(root, what)
    try:
        found, _ = find_classes(root)
    except FileNotFoundError:
        found = []
    classes = [c for c in found if not c.startswith(".")]
    if not classes:
        files = sorted(e.name for e in os.scandir(root) if not e.name.startswith("."))
        raise DatasetError(
            f"The {what} {root} has no class sub-folders, only files ({examples(files)}). "
            "Put each class's images in its own sub-folder, e.g. root/cat/1.jpg, root/dog/2.jpg."
        )
    return classes


def class_folders(root: str | os.PathLike, what: str = "image folder") -> list[str]:
    """The class sub-folder names of `root`, sorted, without reading any image (a cheap check
    before a long scan). Raises DatasetError when `root` is missing, empty or has none."""
    return scan_classes(Path(root).expanduser(), what)


def class_mismatch(expected: Sequence[str], found: Sequence[str]) -> str:
    """'' when `found` has exactly the class names `expected`, else 'missing a, b; unexpected c'."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    parts = ([f"missing {examples(missing)}"] if missing else []) + ([f"unexpected {examples(extra)}"] if extra else [])
    return "; ".join(parts)


def check_masks_outside(masks_dir: Path, root: Path, what: str = "mask folder") -> None:
    """DatasetError if the mask folder (`what`: how the user named it, e.g. "--out") would be
    scanned as (part of) the images: `propagate --out` the image folder itself wrote mask PNGs
    among the images, and the next training saw 51 images instead of 30."""
    masks, images = masks_dir.expanduser().resolve(), root.expanduser().resolve()
    if masks == images or (
        masks.is_relative_to(images) and not any(part.startswith(".") for part in masks.relative_to(images).parts)
    ):
        raise DatasetError(
            f"The {what} {masks_dir} is inside the image folder {root}, so "
            "its masks would be read as images of a class. Choose a mask folder "
            "outside it."
        )


def _check_distinct_classes(root: Path, classes: Sequence[str]) -> None:
    """DatasetError when one class folder is (a link to) another or lies inside it: a class
    `dog -> cat` labelled the same files twice, once per class."""
    reals = {name: os.path.realpath(root / name) for name in classes}
    for name, real in reals.items():
        for other, other_real in reals.items():
            if other != name and (real == other_real or real.startswith(other_real + os.sep)):
                raise DatasetError(
                    f"The class folder {root / name} is the same folder as {root / other} (a link: it leads to "
                    f"{real}), so its images would be labelled as both classes. Remove the link or copy the images."
                )


def find_images(
    root: Path, classes: Sequence[str], class_to_idx: dict[str, int], is_image, links: list[tuple[str, str]]
) -> list[tuple[str, int]]:
    """(path, class index) of every image under root/<class>/, in torchvision's order.

    torchvision's `make_dataset` walks with `followlinks=True`: a link `cat/loop -> ..` turned
    45 images into 1,845, most of them under the wrong class and the same files in training and
    validation. Here a folder link is followed only when it leads out of the image folder to a
    folder not visited yet; every other one is reported in `links` as (relpath, reason).
    """
    root_real = os.path.realpath(root)
    _check_distinct_classes(root, classes)
    visited: set[str] = set()
    found: list[tuple[str, int]] = []
    for name in classes:
        class_dir = root / name
        if not class_dir.is_dir():
            continue
        walked: list[tuple[str, list[str]]] = []
        stack = [str(class_dir)]
        visited.add(os.path.realpath(class_dir))
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as error:
                log.warning("Cannot read %s: %s", folder, error.strerror)
                continue
            files = []
            for entry in entries:
                try:
                    is_dir = entry.is_dir()  # follows links
                except OSError:
                    continue
                if not is_dir:
                    files.append(entry.name)
                    continue
                real = os.path.realpath(entry.path)
                if entry.is_symlink():
                    relpath = Path(entry.path).relative_to(root).as_posix()
                    inside = real == root_real or real.startswith(root_real + os.sep) or root_real.startswith(real + os.sep)
                    if inside:
                        links.append((relpath, "a folder link back into the image folder (not followed)"))
                        continue
                    if real in visited:
                        links.append((relpath, "a folder link to a folder already scanned (not followed)"))
                        continue
                if real in visited:
                    continue
                visited.add(real)
                stack.append(entry.path)
            walked.append((folder, files))
        for folder, files in sorted(walked):
            for file_name in sorted(files):
                path = os.path.join(folder, file_name)
                if is_image(path):
                    found.append((path, class_to_idx[name]))
    return found
