"""An import of masks from another tool: everything read and checked first, then written.

A reader (`binary_folder`, `coco`, `label_studio`) decodes every annotation it is given into
an `ImportPlan` before anything is written: a malformed file, an RLE that overruns, a mask of
the wrong size or a name no image has stops the import with one DatasetError and leaves the mask
folder as it was. The plan keeps each image's red and green as compact COCO RLE, so 10,000
masks take a few megabytes, and says what did not match. `apply_import` then writes the masks.

Existing masks: a hand-painted (or earlier imported) mask is never replaced unless asked
(`on_existing="overwrite"`, or `"merge"`: the import paints only where the mask is unmarked);
a propagated one (meta source "propagated", the app's own guess) is replaced by the annotation.
Imported masks carry the meta {"source": "imported", "from": "<format>:<file>"}.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..display import DISPLAY_MAX_SIDE, capped_size, display_size
from ..errors import DatasetError
from ..image_folder import ImageFolderData
from ..masks import GREEN, RED, UNMARKED, MaskStore, resize_mask
from .coco_rle import decode_rle, encode_rle
from .image_matching import ImageIndex

log = logging.getLogger(__name__)

IMPORTED = "imported"  # meta["source"] of an imported mask
PROPAGATED = "propagated"  # meta["source"] the propagation writes (app.explain.propagation.PROPAGATED)
ON_EXISTING = ("skip", "overwrite", "merge")
Progress = Callable[[int, int], None]  # (done, total)
_LISTED = 5  # names quoted in one error message
WRITERS = 8  # threads writing masks at once (apply_import says why)


def listed(names: Sequence[str], limit: int = _LISTED) -> str:
    """'a, b, c and 4 more' for a message."""
    shown = ", ".join(str(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class DataImages:
    """The images of a data folder an import may annotate: their relpaths and sizes."""

    def __init__(self, root: str | os.PathLike, relpaths: Iterable[str], strip_suffix: str = ""):
        self.root = Path(root)
        self.relpaths = list(relpaths)
        self.index = ImageIndex(self.relpaths, strip_suffix=strip_suffix)
        self._sizes: Dict[str, Tuple[int, int]] = {}

    @classmethod
    def scan(cls, root: str | os.PathLike, strip_suffix: str = "") -> "DataImages":
        """The images the app itself uses in `root` (root/<class>/<image>, broken ones left out)."""
        data = ImageFolderData(root, input_size=1, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        return cls(root, data.relpaths, strip_suffix)

    def size(self, relpath: str) -> Tuple[int, int]:
        """(H, W) of the image as shown upright (EXIF applied), from its header."""
        if relpath not in self._sizes:
            self._sizes[relpath] = display_size(self.root / relpath)
        return self._sizes[relpath]


@dataclass(frozen=True)
class ImportedMask:
    """One image's imported paint: red and green as compact COCO RLE at the annotation's size."""

    relpath: str
    size: Tuple[int, int]  # (H, W)
    red: Optional[dict]
    green: Optional[dict]

    def mask(self) -> np.ndarray:
        """np.int8 H x W in {-1, 0, +1}; where red and green overlap, red wins (a pixel the
        model must not use is the stronger statement)."""
        mask = np.zeros(self.size, dtype=np.int8)
        if self.green is not None:
            mask[decode_rle(self.green, self.relpath)] = GREEN
        if self.red is not None:
            mask[decode_rle(self.red, self.relpath)] = RED
        return mask


@dataclass(frozen=True)
class ImportPlan:
    """What an import would write, and what it could not place."""

    format: str  # "binary", "coco" or "label-studio"
    source: str  # the file or folder read
    masks: Tuple[ImportedMask, ...]
    unmatched: Tuple[str, ...] = ()  # names no image of the data folder has (skipped)
    ambiguous: Tuple[str, ...] = ()  # names several images have (skipped)
    ignored_labels: Dict[str, int] = field(default_factory=dict)  # label -> annotations not mapped to red or green
    overlap_pixels: int = 0  # pixels painted both red and green (red kept)

    def summary(self) -> dict:
        return {
            "format": self.format,
            "source": self.source,
            "images": len(self.masks),
            "unmatched": list(self.unmatched),
            "ambiguous": list(self.ambiguous),
            "ignored_labels": dict(self.ignored_labels),
            "red_and_green_overlap_pixels": self.overlap_pixels,
        }


class PlanBuilder:
    """Collects decoded annotations by image, then checks them all at once (`finish`)."""

    def __init__(self, images: DataImages, fmt: str, source: str | os.PathLike, skip_unmatched: bool = False):
        self.images = images
        self.format = fmt
        self.source = str(source)
        self.skip_unmatched = skip_unmatched
        self._paint: Dict[str, Tuple[Tuple[int, int], np.ndarray, np.ndarray, str]] = {}
        self._unmatched: List[str] = []
        self._ambiguous: List[str] = []
        self._wrong_size: List[str] = []
        self.ignored_labels: Dict[str, int] = {}

    def ignore(self, label: str) -> None:
        """Count an annotation whose label maps to neither colour."""
        self.ignored_labels[label] = self.ignored_labels.get(label, 0) + 1

    def add(self, name: str, size: Tuple[int, int], red: Optional[np.ndarray], green: Optional[np.ndarray], where: str) -> None:
        """Paint of the image another tool calls `name`, at `size` = (H, W) (bool arrays)."""
        match = self.images.index.match(name)
        if match.relpath is None:
            if match.ambiguous:
                self._ambiguous.append(f"{name} (could be {listed(match.candidates, 3)})")
            else:
                self._unmatched.append(name)
            return
        relpath = match.relpath
        expected = self.images.size(relpath)
        if tuple(size) != tuple(expected):
            self._wrong_size.append(
                f"{where} is {size[0]} x {size[1]} (H x W) but the image {relpath} is {expected[0]} x {expected[1]}"
            )
            return
        entry = self._paint.get(relpath)
        if entry is None:
            entry = (tuple(size), np.zeros(size, dtype=bool), np.zeros(size, dtype=bool), where)
            self._paint[relpath] = entry
        if red is not None:
            entry[1].__ior__(red)
        if green is not None:
            entry[2].__ior__(green)

    def finish(self) -> ImportPlan:
        """The plan; DatasetError (one, listing the cases) for wrong sizes, ambiguous names, and
        unmatched names unless `skip_unmatched`."""
        if self._wrong_size:
            raise DatasetError(
                f"{len(self._wrong_size)} masks in {self.source} do not have their image's size: "
                f"{listed(self._wrong_size, 3)}. Export the annotations at the images' own size."
            )
        if self._unmatched and not self.skip_unmatched:
            raise DatasetError(
                f"{len(self._unmatched)} annotated images in {self.source} are not in the data folder "
                f"{self.images.root}: {listed(self._unmatched)}. Check that it is the right folder, or "
                "import the others alone (--skip-unmatched)."
            )
        if self._ambiguous and not self.skip_unmatched:
            raise DatasetError(
                f"{len(self._ambiguous)} names in {self.source} fit several images: {listed(self._ambiguous, 3)}. "
                "Name them by their path inside the data folder (class/image), or import the others "
                "alone (--skip-unmatched)."
            )
        masks, overlap = [], 0
        for relpath in sorted(self._paint):
            size, red, green, _ = self._paint[relpath]
            overlap += int((red & green).sum())
            masks.append(
                ImportedMask(relpath, size, encode_rle(red) if red.any() else None, encode_rle(green) if green.any() else None)
            )
        return ImportPlan(
            self.format,
            self.source,
            tuple(masks),
            tuple(self._unmatched),
            tuple(self._ambiguous),
            dict(self.ignored_labels),
            overlap,
        )


@dataclass(frozen=True)
class ImportOutcome:
    written: Tuple[str, ...]  # relpaths whose mask was written (new, replaced or merged)
    kept: Tuple[str, ...]  # relpaths with a hand-painted mask left as it was
    replaced_propagated: Tuple[str, ...]  # propagated masks replaced by the annotation
    merged: Tuple[str, ...]  # hand-painted masks the import painted into

    def summary(self) -> dict:
        return {
            "written": len(self.written),
            "kept_existing": list(self.kept),
            "replaced_propagated": len(self.replaced_propagated),
            "merged": len(self.merged),
        }


def existing_hand_painted(plan: ImportPlan, store: MaskStore) -> List[str]:
    """The plan's images that already have a mask that is not propagated (what to ask about)."""
    return [m.relpath for m in plan.masks if store.has(m.relpath) and store.meta(m.relpath).get("source") != PROPAGATED]


def _write_one(item: ImportedMask, store: MaskStore, on_existing: str, meta: dict) -> str:
    """Write one imported mask; what happened: "new", "replaced" (propagated), "kept", "merged"
    or "overwritten"."""
    mask = resize_mask(item.mask(), capped_size(*item.size, DISPLAY_MAX_SIDE))
    status = "new"
    if store.path_for(item.relpath).is_file():
        if store.meta(item.relpath).get("source") == PROPAGATED:
            status = "replaced"
        elif on_existing == "skip":
            return "kept"
        elif on_existing == "merge":
            existing = store.load_array(item.relpath)
            mask = resize_mask(mask, existing.shape)
            mask = np.where(existing != UNMARKED, existing, mask).astype(np.int8)
            status = "merged"
        else:
            status = "overwritten"
    store.save(item.relpath, mask, meta)
    return status


def apply_import(
    plan: ImportPlan, store: MaskStore, on_existing: str = "skip", progress: Optional[Progress] = None
) -> ImportOutcome:
    """Write the plan's masks into `store`, at the size the app stores masks (the image's
    display size); see the module docstring for masks already there. `progress(done, total)`
    as images are done.

    WRITERS threads write at once: each mask is fsynced twice (file and folder, `atomic_open`),
    which alone took 10 ms a mask on the development machine, and fsyncs of several threads
    overlap (the file system commits them together)."""
    if on_existing not in ON_EXISTING:
        raise ValueError(f"on_existing must be one of {ON_EXISTING}; got {on_existing!r}")
    meta = {"source": IMPORTED, "from": f"{plan.format}:{Path(plan.source).name}"}
    statuses: Dict[str, str] = {}
    total = len(plan.masks)
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        futures = {pool.submit(_write_one, item, store, on_existing, meta): item.relpath for item in plan.masks}
        try:
            for done, future in enumerate(as_completed(futures), 1):
                statuses[futures[future]] = future.result()
                if progress is not None:
                    progress(done, total)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    order = [m.relpath for m in plan.masks]
    kept = [r for r in order if statuses[r] == "kept"]
    if kept:
        log.info("kept %d hand-painted masks (not overwritten): %s", len(kept), listed(kept))
    return ImportOutcome(
        written=tuple(r for r in order if statuses[r] != "kept"),
        kept=tuple(kept),
        replaced_propagated=tuple(r for r in order if statuses[r] == "replaced"),
        merged=tuple(r for r in order if statuses[r] == "merged"),
    )
