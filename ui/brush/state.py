"""The masks of one feedback round in the brush window, and when they are saved.

`PaintRound` holds what the brush window edits, without any widget: the round's images, which
one is on screen, each visited image's mask with its undo history (kept per image, so undo
survives previous / next) and what the mask store holds for it. Its methods are the save
policy:

- every finished stroke, region (rectangle, lasso, fill), undo, redo and clear hands the mask
  to the `MaskAutosaver` when it differs from what was handed over last; an empty mask deletes
  the stored file;
- an image only looked at (or skipped) is not written: its stored mask stays as it was (one
  whose `FeedbackItem.mask` differs from the store's is written when left: that mask was shown);
- leaving an image (previous, next, skip, done, cancel, closing, propagation) waits for its
  write and says why it failed, if it did (a failed write is retried once first);
- Done reports the relpaths of the round's images that have a mask in the store;
- after a propagation was applied, the round's other images start from the store again unless
  the user has unsaved changes to them here.

Masks are `H x W` int8 arrays in {-1, 0, +1} (`GREEN = -1` encourage, `RED = +1` discourage,
`0` unmarked) at the size of the image shown (`FeedbackItem.image`). Images are `H x W x 3`
uint8 RGB. No tkinter here: the window forwards to this and draws; tested without a display.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from app.run.messages import FeedbackItem
from datasets.masks import resize_mask

from .autosave import MaskAutosaver
from .strokes import GREEN, RED, Box, StrokeHistory

log = logging.getLogger(__name__)

SAVE_TIMEOUT_S = 30.0  # leaving an image waits this long at most for its mask's write

__all__ = ["SAVE_TIMEOUT_S", "ImageState", "PaintRound", "as_rgb"]


@dataclass
class ImageState:
    """What is kept per visited image while the window is open (so undo survives prev / next)."""

    mask: np.ndarray  # H x W int8 in {-1, 0, 1}, painted in place
    history: StrokeHistory  # undo / redo of `mask`
    saved: np.ndarray  # H x W int8: what was last handed to the store (zeros when it holds nothing)

    @property
    def changed(self) -> bool:
        """True when `mask` differs from what the store was last given."""
        return not np.array_equal(self.mask, self.saved)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 from an RGB, RGBA (alpha dropped) or grayscale (H x W) uint8 array."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"image must be H x W x 3, got shape {image.shape}")
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


class PaintRound:
    """The images of one round, the one on screen, and their masks.

    items: the images offered (at least one). masks: a `datasets.MaskStore` (or anything with
    `has`, `load_array`, `save` and `delete`). A `MaskAutosaver` on `masks` is made unless one
    is given; `close()` ends it.
    """

    def __init__(self, items: Sequence[FeedbackItem], masks: Any, autosaver: Optional[MaskAutosaver] = None) -> None:
        if not items:
            raise ValueError("the brush window needs at least one image")
        self.items: Tuple[FeedbackItem, ...] = tuple(items)
        self.images: List[np.ndarray] = [as_rgb(item.image) for item in self.items]  # H x W x 3 uint8
        self.masks = masks
        self.autosaver = autosaver if autosaver is not None else MaskAutosaver(masks)  # after the checks: a thread
        self.index = 0  # the image on screen, 0-based
        self._states: List[Optional[ImageState]] = [None] * len(self.items)
        self._from_store: Set[int] = set()  # indices whose item.mask is stale: start from the store

    # ------------------------------------------------------------------------ the image on screen
    @property
    def item(self) -> FeedbackItem:
        return self.items[self.index]

    @property
    def image(self) -> np.ndarray:
        """The image on screen, H x W x 3 uint8."""
        return self.images[self.index]

    @property
    def state(self) -> ImageState:
        """The state of the image on screen, loaded on first visit."""
        return self.state_at(self.index)

    @property
    def mask(self) -> np.ndarray:
        """The mask of the image on screen: H x W int8 in {-1, 0, 1}, live (painted in place)."""
        return self.state.mask

    @property
    def history(self) -> StrokeHistory:
        return self.state.history

    @property
    def loaded(self) -> bool:
        """True when the image on screen has its state (it is loaded by `state`)."""
        return self._states[self.index] is not None

    @property
    def drawing(self) -> bool:
        """True while a brush stroke is under way on the image on screen."""
        state = self._states[self.index]
        return state is not None and state.history.drawing

    @property
    def is_first(self) -> bool:
        return self.index == 0

    @property
    def is_last(self) -> bool:
        return self.index == len(self.items) - 1

    def go_to(self, index: int) -> None:
        """Make image `index` the one on screen (loading its mask); saves nothing (see `leave`)."""
        index = int(index)
        if not 0 <= index < len(self.items):
            raise IndexError(f"image {index} of {len(self.items)}")
        self.index = index
        self.state_at(index)

    def state_at(self, index: int) -> ImageState:
        """The state of image `index`, loaded on first visit: the mask starts from the item's own
        mask (resized to the image), else from the store's; an unreadable stored mask counts as
        none (painting replaces it)."""
        state = self._states[index]
        if state is None:
            item = self.items[index]
            height, width = self.images[index].shape[:2]
            try:
                stored = self.masks.load_array(item.relpath)
            except ValueError as error:  # DatasetError: an unreadable file; painting replaces it
                log.warning("ignoring the stored mask of %s: %s", item.relpath, error)
                stored = None
            saved = np.zeros((height, width), np.int8) if stored is None else resize_mask(stored, (height, width))
            start = saved if item.mask is None or index in self._from_store else resize_mask(item.mask, (height, width))
            mask = start.copy()
            state = ImageState(mask=mask, history=StrokeHistory(mask), saved=saved)
            self._states[index] = state
        return state

    def has_stored_mask(self) -> bool:
        """True when the store holds a mask for the image on screen."""
        return bool(self.masks.has(self.item.relpath))

    def paint_counts(self) -> Tuple[int, int]:
        """(red pixels, green pixels) of the mask on screen."""
        mask = self.mask
        return int((mask == RED).sum()), int((mask == GREEN).sum())

    # ------------------------------------------------------------------------------- editing
    # Each returns the Box of mask pixels that changed (for the window to redraw), or None.
    def begin_stroke(self, x: float, y: float, radius: float, value: int) -> Optional[Box]:
        """A brush stroke starts at image point (x, y) with `value` (RED, GREEN or 0)."""
        return self.state.history.begin(x, y, radius, value)

    def extend_stroke(self, x: float, y: float) -> Optional[Box]:
        return self.state.history.extend(x, y)

    def end_stroke(self) -> bool:
        """Finish a stroke under way and save it (in the background); True when one was."""
        state = self._states[self.index]
        if state is None or not state.history.drawing:
            return False
        state.history.end()
        self.autosave()  # every finished stroke reaches the disk
        return True

    def apply_region(self, region: np.ndarray, value: int) -> Optional[Box]:
        """A rectangle, lasso or fill (`region`: H x W bool) set to `value`: one undoable edit,
        saved like a stroke."""
        box = self.state.history.apply_region(region, value)
        self.autosave()
        return box

    def undo(self) -> Optional[Box]:
        box = self.state.history.undo()
        self.autosave()
        return box

    def redo(self) -> Optional[Box]:
        box = self.state.history.redo()
        self.autosave()
        return box

    def clear(self) -> Optional[Box]:
        """Erase all paint on the image on screen (undoable); saved, so the stored file goes."""
        box = self.state.history.clear()
        self.autosave()
        return box

    # -------------------------------------------------------------------------------- saving
    def autosave(self) -> bool:
        """Hand the mask on screen to the background writer if it differs from the last one
        handed over; True when a write was asked for."""
        state = self._states[self.index]
        if state is None or not state.changed:
            return False
        self.autosaver.request(self.item.relpath, state.mask)
        state.saved = state.mask.copy()
        return True

    def leave(self, timeout: float = SAVE_TIMEOUT_S) -> Optional[str]:
        """Save the mask on screen if it changed and wait for the write: None when it is safely
        stored (or there was nothing to store), else why it is not. A write that failed before is
        tried once more."""
        self.end_stroke()
        state = self._states[self.index]
        if state is None:
            return None
        relpath = self.item.relpath
        if relpath in self.autosaver.failures():
            self.autosaver.request(relpath, state.mask)  # try once more before giving up
        else:
            self.autosave()
        if not self.autosaver.flush(timeout):
            return f"writing it took longer than {timeout:.0f} s"
        return self.autosaver.failures().get(relpath)

    def save_status(self) -> Tuple[str, bool]:
        """The save part of the status line for the image on screen and whether it is an error:
        (" · NOT SAVED: why", True), ("", False) while drawing, (" · saving...", False) or
        (" · saved", False)."""
        failed = self.autosaver.failures().get(self.item.relpath)
        if failed is not None:
            return f" · NOT SAVED: {failed}", True
        if self.drawing:
            return "", False
        if not self.autosaver.idle:
            return " · saving...", False
        return " · saved", False

    def annotated(self) -> Tuple[str, ...]:
        """What Done reports: the relpaths of the round's images with a mask in the store, in
        the round's order."""
        return tuple(item.relpath for item in self.items if self.masks.has(item.relpath))

    def result(self, done: bool) -> Tuple[str, Tuple[str, ...]]:
        """What the window's `result` becomes after a successful `leave`: ("done", `annotated()`)
        for Done (or Skip on the last image), ("cancel", ()) for Cancel, Escape or closing (what
        was painted is saved all the same)."""
        return ("done", self.annotated()) if done else ("cancel", ())

    def close(self, timeout: Optional[float] = SAVE_TIMEOUT_S) -> bool:
        """Wait for the writes asked for and end the writer; True when all were done in time."""
        return self.autosaver.close(timeout)

    # ---------------------------------------------------------------------------- more images
    def add(self, items: Iterable[FeedbackItem]) -> Tuple[int, Optional[int]]:
        """Append the items not here yet (by relpath). Returns (how many were added, the index
        of the first of `items` — added or already here — or None when `items` is empty)."""
        known = {item.relpath: index for index, item in enumerate(self.items)}
        first: Optional[int] = None
        added = 0
        for item in items:
            if item.relpath in known:
                first = known[item.relpath] if first is None else first
                continue
            self.items = self.items + (item,)
            self.images.append(as_rgb(item.image))
            self._states.append(None)
            known[item.relpath] = len(self.items) - 1
            first = len(self.items) - 1 if first is None else first
            added += 1
        return added, first

    # ---------------------------------------------------------------------------- propagation
    def propagation_source(self) -> Tuple[Optional[str], str]:
        """After a successful `leave`: (relpath, "") when the saved mask on screen has red to
        propagate, else (None, why not)."""
        if not (self.state.saved == RED).any():
            return None, "Paint red on this image first: only red propagates (green marks this image's own object)."
        return self.item.relpath, ""

    def propagation_applied(self, relpaths: Iterable[str]) -> None:
        """The images `relpaths` may have got a propagated mask in the store: those of the round
        other than the one on screen start from the store when next shown (their undo history
        goes with the old mask), unless their mask has changes not handed to the store yet. An
        image the user painted here was saved when left, so the propagation skipped it and the
        store holds the user's mask."""
        targets = set(relpaths)
        for index, state in enumerate(self._states):
            if index == self.index or self.items[index].relpath not in targets:
                continue
            if state is None:
                self._from_store.add(index)  # not visited yet: start from the store, not item.mask
            elif not state.changed:
                self._states[index] = None
                self._from_store.add(index)
