"""Where the painted content was found: the preview of a content propagation, before anything is
written.

Thumbnails of the best finds and of the borderline ones (the trainer sends at most
`app.run.display_items.PREVIEW_ITEMS`), each with the found region outlined in red and its confidence.
Untick an image to drop it from the plan; "Not this" marks its find as wrong (the locator learns
from it on the next preview) and drops it; double-click opens the image in the brush window.
"Preview again" re-runs the search with the corrections; "Apply" writes the masks of every image
still in the plan, as ilastik's live prediction is corrected with more strokes.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
from PIL import Image, ImageTk

from app.run import messages as msg

from .content_plan import ContentPlanChoices
from .overlay import paint_outline
from .scrollable import ScrollableFrame

TILE = 120  # thumbnail side on screen, pixels
COLUMNS = 5
OUTLINE_RGB = (255, 32, 32)


def outlined_thumbnail(item: msg.PreviewItem, side: int = TILE) -> np.ndarray:
    """The item's thumbnail scaled to fit side x side with the found region's rim drawn in red.
    Returns h x w x 3 uint8."""
    image = np.asarray(item.thumbnail, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    scale = side / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    shown = np.asarray(Image.fromarray(image[..., :3]).resize(size, Image.Resampling.NEAREST)).copy()
    region = np.asarray(Image.fromarray(np.asarray(item.region, np.uint8) * 255).resize(size, Image.Resampling.NEAREST)) > 0
    shown[paint_outline(region.astype(np.int8), width=2)] = OUTLINE_RGB
    return shown


class ContentPreviewWindow(tk.Toplevel):
    """One content propagation's preview; `show(event)` refreshes it with a new answer.

    submit(command): hands trainer commands over. on_open(relpaths): open images in the brush
    window (may be None).
    """

    def __init__(
        self,
        master: tk.Misc,
        sources: Sequence[str],
        submit: Callable[[Any], None],
        on_open: Optional[Callable[[tuple], None]] = None,
    ) -> None:
        super().__init__(master)
        self.title("Where the painted content was found")
        self.submit = submit
        self.on_open = on_open
        self.choices = ContentPlanChoices(tuple(sources))
        self.preview: Optional[msg.PropagationPreview] = None
        self._photos: Dict[str, ImageTk.PhotoImage] = {}
        self.keep_vars: Dict[str, tk.BooleanVar] = {}
        self.tiles: Dict[str, ttk.Frame] = {}

        self.summary_label = ttk.Label(self, padding=(10, 8, 10, 2), justify="left", wraplength=700)
        self.summary_label.pack(fill="x")
        self.grid_frame = ScrollableFrame(self)
        self.grid_frame.pack(fill="both", expand=True, padx=10)
        buttons = ttk.Frame(self, padding=10)
        buttons.pack(fill="x")
        self.rerun_button = ttk.Button(buttons, text="Preview again", command=self.rerun)
        self.apply_button = ttk.Button(buttons, text="Apply", command=self.apply)
        self.close_button = ttk.Button(buttons, text="Close", command=self.destroy)
        self.rerun_button.pack(side="left")
        self.close_button.pack(side="right")
        self.apply_button.pack(side="right", padx=6)
        self.bind("<Escape>", lambda _e: self.destroy())
        self.geometry(f"{COLUMNS * (TILE + 22) + 60}x{min(660, self.winfo_screenheight() - 80)}")

    # -------------------------------------------------------------------------- answers
    def show(self, event: msg.PropagationPreview) -> None:
        """Show a new preview answer (tiles rebuilt; the user's choices are kept)."""
        self.preview = event
        for child in self.grid_frame.body.winfo_children():
            child.destroy()
        self._photos.clear()
        self.keep_vars.clear()
        self.tiles.clear()
        for number, item in enumerate(event.items):
            self._tile(number, item)
        self._update_summary()

    def _tile(self, number: int, item: msg.PreviewItem) -> None:
        tile = ttk.Frame(self.grid_frame.body, padding=4, relief="groove")
        tile.grid(row=number // COLUMNS, column=number % COLUMNS, padx=3, pady=3, sticky="n")
        photo = ImageTk.PhotoImage(Image.fromarray(outlined_thumbnail(item)), master=self)
        self._photos[item.relpath] = photo
        picture = ttk.Label(tile, image=photo)
        picture.pack()
        picture.bind("<Double-Button-1>", lambda _e, r=item.relpath: self._open(r))
        ttk.Label(tile, text=f"{100 * item.confidence:.0f} %  {item.relpath}", width=18, font=("TkDefaultFont", 8)).pack()
        keep = tk.BooleanVar(self, value=item.relpath not in self.choices.dropped)
        self.keep_vars[item.relpath] = keep
        row = ttk.Frame(tile)
        row.pack(fill="x")
        ttk.Checkbutton(row, text="use", variable=keep, command=lambda r=item.relpath, v=keep: self._toggle(r, v.get())).pack(
            side="left"
        )
        ttk.Button(row, text="Not this", width=8, command=lambda i=item: self.mark_not_this(i)).pack(side="right")
        self.tiles[item.relpath] = tile

    def _update_summary(self) -> None:
        event = self.preview
        if event is None:
            return
        kept = self.choices.kept(event)
        shown = len(event.items)
        text = (
            f"Found in {event.count} of {event.examined} images (probability threshold "
            f"{event.threshold:.2f}). Shown: the {min(shown, event.count)} best and most borderline "
            f"finds, best first; the outline is what Apply would paint red. Untick what is wrong, "
            f"or press Not this and Preview again."
        )
        if event.skipped_hand_painted:
            text += f" {len(event.skipped_hand_painted)} painted by you keep their own mask."
        self.summary_label.configure(text=text)
        self.apply_button.configure(text=f"Apply to {kept} image{'s' if kept != 1 else ''}")
        self.apply_button.state(["!disabled"] if kept else ["disabled"])

    # -------------------------------------------------------------------------- actions
    def _toggle(self, relpath: str, keep: bool) -> None:
        self.choices.toggle(relpath, keep)
        self._update_summary()

    def _open(self, relpath: str) -> None:
        if self.on_open is not None:
            self.on_open((relpath,))

    def mark_not_this(self, item: msg.PreviewItem) -> None:
        """The find on `item` is wrong: save it as a correction and drop the image."""
        self.submit(self.choices.not_this(item))
        if item.relpath in self.keep_vars:
            self.keep_vars[item.relpath].set(False)
        self._update_summary()

    def rerun(self) -> None:
        self.submit(self.choices.preview_command())
        self.summary_label.configure(text="Looking again, with your corrections...")

    def apply(self) -> None:
        self.submit(self.choices.apply_command())
        self.destroy()
