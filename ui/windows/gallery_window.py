"""The gallery: thumbnails of the training images, filtered, from which any image is painted.

Opened from the brush window ("Gallery...") while a round waits for paint: the trainer lists
the training images with the current model's predictions (`ImagesDescribed`); the filters
(`ui.helpers.gallery_filter`) narrow them by class, prediction, reasonability cell (of the latest
matrix) and mask. Click selects (Ctrl/Shift-click adds), double-click or "Paint selected" hands
the relpaths to `on_paint`, which adds them to the brush window. Thumbnails are read from the
image files on disk (no model here), a page at a time, so a large folder opens at once.

Between rounds the main window lists the folder as it is on disk
(`ui.helpers.gallery_filter.scan_folder`): a file with an image's name that is no image
(training skips it with a warning) is left out and named in the count line; one whose header
reads but whose pixels do not gets a tile captioned "unreadable", never a silent black square.
"""

from __future__ import annotations

import logging
import tkinter as tk
from pathlib import Path
from tkinter import ttk
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from PIL import Image, ImageTk

from app.run import messages as msg
from ui.helpers.gallery_filter import ANY, MASKS, GalleryFilter, filter_entries, prediction_choices, unreadable_text
from ui.helpers.window_geometry import GeometryStore
from ui.helpers.wording import plural
from ui.tk_support.window_placement import place
from ui.widgets.scrollable import ScrollableFrame

log = logging.getLogger(__name__)

THUMB = 96  # thumbnail side in pixels
COLUMNS = 7
PAGE = 48  # thumbnails per page
CELL_NAMES = {
    "accurate_reasonable": "right for the right reason",
    "accurate_unreasonable": "right for the wrong reason",
    "inaccurate_reasonable": "wrong, right place",
    "inaccurate_unreasonable": "wrong, wrong place",
}
CAPTION_RIGHT, CAPTION_WRONG, CAPTION_UNKNOWN = "#1a7f1a", "#c00000", "#444444"  # prediction right / wrong / none


class GalleryWindow(tk.Toplevel):
    """entries: `msg.GalleryEntry`s; train_dir: where the images are; cells: reasonability cell
    -> relpaths; masked(): relpaths with a mask now; on_paint(relpaths); unreadable: the
    `(relpath, reason)` of files left out of `entries` because they are no image."""

    def __init__(
        self,
        master: tk.Misc,
        entries: Sequence[msg.GalleryEntry],
        train_dir: str,
        *,
        cells: Optional[Mapping[str, Iterable[str]]] = None,
        masked: Callable[[], Iterable[str]] = lambda: (),
        on_paint: Callable[[Sequence[str]], None],
        n_train: int = 0,
        store: Optional[GeometryStore] = None,
        unreadable: Sequence[Tuple[str, str]] = (),
    ) -> None:
        super().__init__(master)
        self.title("Gallery of training images")
        self.entries = list(entries)
        self.train_dir = Path(train_dir)
        self.cells = {k: tuple(v) for k, v in (cells or {}).items()}
        self.masked = masked
        self.on_paint = on_paint
        self.n_train = n_train or len(self.entries)
        self.unreadable = list(unreadable)
        self.broken_thumbnails: Set[str] = set()  # listed, but the pixels would not decode
        self.shown: List[msg.GalleryEntry] = []
        self.selected: List[str] = []
        self.page = 0
        self._photos: Dict[str, ImageTk.PhotoImage] = {}
        self.tiles: Dict[str, tk.Frame] = {}
        self._placeholder = ImageTk.PhotoImage(Image.new("RGB", (THUMB, THUMB), "#222222"), master=self)
        classes = sorted({e.true_label for e in self.entries})
        self.label_var = tk.StringVar(self, value=ANY)
        self.prediction_var = tk.StringVar(self, value=ANY)
        self.cell_var = tk.StringVar(self, value=ANY)
        self.mask_var = tk.StringVar(self, value=ANY)
        self._build(classes)
        for var in (self.label_var, self.prediction_var, self.cell_var, self.mask_var):
            var.trace_add("write", lambda *_: self.refresh())
        self.bind("<Escape>", lambda _e: self.destroy())
        self.bind("<Return>", lambda _e: self.paint_selected())
        self.refresh()
        place(self, "gallery", 840, 760, store)

    def _build(self, classes: Sequence[str]) -> None:
        top = ttk.Frame(self, padding=(8, 8, 8, 4))
        top.pack(fill="x")
        self.filter_boxes = {}
        filters = (
            ("Class", self.label_var, [ANY, *classes]),
            ("Prediction", self.prediction_var, prediction_choices(classes)),
            ("Reasonability", self.cell_var, [ANY, *CELL_NAMES]),
            ("Mask", self.mask_var, list(MASKS)),
        )
        for column, (title, var, values) in enumerate(filters):
            ttk.Label(top, text=title).grid(row=0, column=column, sticky="w", padx=(0, 8))
            box = ttk.Combobox(
                top, textvariable=var, values=values, state="readonly", width=max(10, min(26, max(len(v) for v in values) + 1))
            )
            box.grid(row=1, column=column, sticky="w", padx=(0, 8))
            self.filter_boxes[title.lower()] = box
        self.count_label = ttk.Label(self, padding=(8, 0))
        self.count_label.pack(fill="x")
        self.grid_frame = ScrollableFrame(self)
        self.grid_frame.pack(fill="both", expand=True, padx=8, pady=4)
        bottom = ttk.Frame(self, padding=8)
        bottom.pack(fill="x")
        self.prev_button = ttk.Button(bottom, text="◀ Page", command=lambda: self.turn(-1))
        self.next_button = ttk.Button(bottom, text="Page ▶", command=lambda: self.turn(1))
        self.page_label = ttk.Label(bottom)
        self.prev_button.pack(side="left")
        self.page_label.pack(side="left", padx=6)
        self.next_button.pack(side="left")
        self.close_button = ttk.Button(bottom, text="Close", command=self.destroy)
        self.close_button.pack(side="right")
        self.paint_button = ttk.Button(bottom, text="Paint selected", command=self.paint_selected)
        self.paint_button.pack(side="right", padx=(0, 6))
        self.selection_label = ttk.Label(self, padding=(8, 0, 8, 0), anchor="e")
        self.selection_label.pack(fill="x", before=bottom)

    @property
    def filter(self) -> GalleryFilter:
        cell = self.cell_var.get()
        return GalleryFilter(self.label_var.get(), self.prediction_var.get(), cell, self.mask_var.get())

    def refresh(self) -> None:
        """Re-apply the filters and show the first page."""
        self.shown = filter_entries(self.entries, self.filter, self.cells, self.masked())
        self.page = 0
        capped = f" (the first {len(self.entries)} of {self.n_train})" if self.n_train > len(self.entries) else ""
        left_out = unreadable_text(self.unreadable)
        self.count_label.configure(
            text=f"{plural(len(self.shown), 'image')} of {len(self.entries)}{capped} match"
            + (f"; {left_out}" if left_out else "")
        )
        self._show_page()

    def turn(self, step: int) -> None:
        pages = max(1, -(-len(self.shown) // PAGE))
        self.page = min(pages - 1, max(0, self.page + step))
        self._show_page()

    def _thumbnail(self, relpath: str) -> ImageTk.PhotoImage:
        if relpath in self._photos:
            return self._photos[relpath]
        photo = self._placeholder  # an unreadable file keeps a dark square, not a text-width label
        try:
            with Image.open(self.train_dir / relpath) as image:
                image = image.convert("RGB")
                # shrink large images; enlarge small ones (a 32 px digit) with crisp pixels
                factor = THUMB / max(image.size)
                size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
                image = image.resize(size, Image.Resampling.NEAREST if factor > 1 else Image.Resampling.LANCZOS)
                photo = ImageTk.PhotoImage(image, master=self)
        except FileNotFoundError as error:  # gone since the listing: a dark square, as before
            log.info("no thumbnail for %s: %s", relpath, error)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:  # a bomb: training skips it too
            log.info("no thumbnail for %s: %s", relpath, error)
            self.broken_thumbnails.add(relpath)
        self._photos[relpath] = photo
        return photo

    def _show_page(self) -> None:
        body = self.grid_frame.body
        for child in body.winfo_children():
            child.destroy()
        self.tiles = {}
        masked = set(self.masked())
        start = self.page * PAGE
        for slot, entry in enumerate(self.shown[start : start + PAGE]):
            tile = tk.Frame(body, highlightthickness=3, highlightbackground="#d9d9d9", padx=2, pady=2)
            tile.grid(row=slot // COLUMNS, column=slot % COLUMNS, padx=2, pady=2, sticky="n")
            picture = tk.Label(tile, image=self._thumbnail(entry.relpath), background="#222222")
            picture.pack()
            right = entry.predicted_label == entry.true_label
            text = f"{entry.true_label} → {entry.predicted_label}" if entry.predicted_label else entry.true_label
            # no prediction (the folder as on disk, between rounds): the class alone, not red as if wrong
            colour = (CAPTION_RIGHT if right else CAPTION_WRONG) if entry.predicted_label else CAPTION_UNKNOWN
            if entry.relpath in self.broken_thumbnails:
                text, colour = f"{entry.true_label}: unreadable", CAPTION_WRONG
            caption = tk.Label(
                tile,
                text=text + (" ●" if entry.relpath in masked else ""),
                foreground=colour,
                font=("TkDefaultFont", 8),
            )
            caption.pack()
            for widget in (tile, picture, caption):
                widget.bind("<Button-1>", lambda e, r=entry.relpath: self.click(r, e.state))
                widget.bind("<Double-Button-1>", lambda _e, r=entry.relpath: self.paint([r]))
            self.tiles[entry.relpath] = tile
        pages = max(1, -(-len(self.shown) // PAGE))
        self.page_label.configure(text=f"page {self.page + 1} of {pages}")
        self.prev_button.state(["!disabled" if self.page > 0 else "disabled"])
        self.next_button.state(["!disabled" if self.page < pages - 1 else "disabled"])
        self._mark_selection()

    def click(self, relpath: str, state: int = 0) -> None:
        """Select one image (Ctrl or Shift: add to / remove from the selection)."""
        if state & 0x0005:
            if relpath in self.selected:
                self.selected.remove(relpath)
            else:
                self.selected.append(relpath)
        else:
            self.selected = [relpath]
        self._mark_selection()

    def _mark_selection(self) -> None:
        for relpath, tile in self.tiles.items():
            tile.configure(highlightbackground="#3b7dd8" if relpath in self.selected else "#d9d9d9")
        self.selection_label.configure(
            text=f"{plural(len(self.selected), 'image')} selected" if self.selected else "click to select, double-click to paint"
        )
        self.paint_button.state(["!disabled" if self.selected else "disabled"])

    def paint_selected(self) -> None:
        if self.selected:
            self.paint(list(self.selected))

    def paint(self, relpaths: Sequence[str]) -> None:
        self.on_paint(tuple(relpaths))
