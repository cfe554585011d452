"""Where the painted content was found: the preview of a content propagation, before anything is
written.

Every find, a page of `app.run.display_items.PREVIEW_ITEMS` thumbnails at a time (best first;
"Next" and "Previous" page through them all, as the review queues of CVAT and Label Studio do),
each with the found region outlined in red and its confidence. Untick an image to drop it from
the plan; "Not this" marks its find as wrong (the locator learns from it on the next preview) and
drops it; double-click opens the image in the brush window. "Preview again" re-runs the search
with the corrections; "Apply" writes the plan the user has just reviewed (less what was dropped),
without searching again. While either runs, a bar shows how far it is and Cancel stops it; the
other buttons wait, so an old answer can never offer to apply again after Apply.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
from PIL import Image, ImageTk

from app.run import messages as msg
from app.run.display_items import PREVIEW_ITEMS
from ui.helpers.content_plan import ContentPlanChoices
from ui.helpers.overlay import paint_outline
from ui.widgets.scrollable import ScrollableFrame

TILE = 120  # thumbnail side on screen, pixels
COLUMNS = 5
OUTLINE_RGB = (255, 32, 32)
PAGE = PREVIEW_ITEMS  # finds per page: the trainer's page size
STAGE_TEXT = {"finding": "Looking through the images", "writing": "Writing the masks"}


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


def summary_text(event: msg.PropagationPreview, start: int, shown: int) -> str:
    """The preview's explanation: how many found, which page, what the threshold means, what the
    locator learnt from."""
    learnt = len(event.learned_from) or 1
    text = (
        f"Found in {event.count} of {event.examined} images. Showing finds {start + 1 if shown else 0}-{start + shown} "
        f"of {event.count}, most sure first; the outline is what Apply would paint red. A pixel counts as found "
        f"where the locator is at least {event.threshold:.2f} sure (a threshold it set itself on recoloured copies "
        f"of your paint); the % under each image is how sure it is of that find. Learnt from "
        f"{learnt} painted image{'s' if learnt != 1 else ''}"
    )
    if event.corrections:
        text += f" and {event.corrections} 'not this' correction{'s' if event.corrections != 1 else ''}"
    text += ". Untick what is wrong, or press Not this and Preview again."
    if event.skipped_hand_painted:
        text += f" {len(event.skipped_hand_painted)} painted by you keep their own mask."
    return text


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
        self.items: tuple = ()  # the page on screen
        self.start = 0  # index of its first find in the plan's ranking
        self.busy: Optional[str] = None  # "finding" | "writing" while the trainer works for us
        self._photos: Dict[str, ImageTk.PhotoImage] = {}
        self.keep_vars: Dict[str, tk.BooleanVar] = {}
        self.tiles: Dict[str, ttk.Frame] = {}
        self.not_this_buttons: Dict[str, ttk.Button] = {}

        self.summary_label = ttk.Label(self, padding=(10, 8, 10, 2), justify="left", wraplength=700)
        self.summary_label.pack(fill="x")
        pages = ttk.Frame(self, padding=(10, 0))
        pages.pack(fill="x")
        self.previous_button = ttk.Button(pages, text="\u25c0 Previous", command=self.previous_page)
        self.next_button = ttk.Button(pages, text="Next \u25b6", command=self.next_page)
        self.page_label = ttk.Label(pages)
        self.previous_button.pack(side="left")
        self.page_label.pack(side="left", padx=8)
        self.next_button.pack(side="left")
        buttons = ttk.Frame(self, padding=10)
        buttons.pack(side="bottom", fill="x")
        self.rerun_button = ttk.Button(buttons, text="Preview again", command=self.rerun)
        self.apply_button = ttk.Button(buttons, text="Apply", command=self.apply)
        self.close_button = ttk.Button(buttons, text="Close", command=self.destroy)
        self.rerun_button.pack(side="left")
        self.close_button.pack(side="right")
        self.apply_button.pack(side="right", padx=6)
        work = ttk.Frame(self, padding=(10, 0))
        work.pack(side="bottom", fill="x")
        self.progress_label = ttk.Label(work)
        self.progress_bar = ttk.Progressbar(work, mode="determinate", maximum=1.0)
        self.cancel_button = ttk.Button(work, text="Cancel", command=self.cancel)
        self.progress_label.pack(side="left")
        self.progress_bar.pack(side="left", fill="x", expand=True, padx=6)
        self.cancel_button.pack(side="left")
        self.grid_frame = ScrollableFrame(self)
        self.grid_frame.pack(fill="both", expand=True, padx=10)
        self.bind("<Escape>", lambda _e: self.destroy())
        self.geometry(f"{COLUMNS * (TILE + 22) + 60}x{min(700, self.winfo_screenheight() - 80)}")
        self._update_buttons()

    # -------------------------------------------------------------------------- answers
    def show(self, event: msg.PropagationPreview) -> None:
        """Show a new preview answer from its first page (the user's choices are kept)."""
        self.preview = event
        self.busy = None
        self._show_items(0, event.items)

    def show_page(self, event: msg.PreviewPageItems) -> None:
        """Another page of the finds of the plan on screen (ignored for any other plan)."""
        if self.preview is None or event.plan_id != self.preview.plan_id:
            return
        self._show_items(event.start, event.items)

    def show_progress(self, event: msg.PropagationProgress) -> None:
        """The trainer's work for this window advances: the bar and its line follow."""
        self.busy = self.busy or event.stage
        fraction = event.done / event.total if event.total else 0.0
        self.progress_bar.configure(value=fraction)
        self.progress_label.configure(text=f"{STAGE_TEXT.get(event.stage, event.stage)}: {event.done} of {event.total}")
        self._update_buttons()

    def show_failed(self, event: msg.PropagationFailed) -> None:
        """A rerun or apply ended without an answer (cancelled or failed): usable again."""
        self.busy = None
        self.progress_label.configure(text=event.message)
        self._update_buttons()

    def _show_items(self, start: int, items: Sequence[msg.PreviewItem]) -> None:
        self.start, self.items = start, tuple(items)
        for child in self.grid_frame.body.winfo_children():
            child.destroy()
        self._photos.clear()
        self.keep_vars.clear()
        self.tiles.clear()
        self.not_this_buttons.clear()
        for number, item in enumerate(self.items):
            self._tile(number, item)
        self.progress_label.configure(text="")
        self.progress_bar.configure(value=0.0)
        self.grid_frame.canvas.yview_moveto(0.0)
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
        button = ttk.Button(row, text="Not this", width=8, command=lambda i=item: self.mark_not_this(i))
        button.pack(side="right")
        self.not_this_buttons[item.relpath] = button
        self.tiles[item.relpath] = tile

    def _update_summary(self) -> None:
        event = self.preview
        if event is None:
            return
        self.summary_label.configure(text=summary_text(event, self.start, len(self.items)))
        pages = max(1, -(-event.count // PAGE))
        self.page_label.configure(text=f"page {self.start // PAGE + 1} of {pages}")
        self._update_buttons()

    def _update_buttons(self) -> None:
        event = self.preview
        kept = self.choices.kept(event) if event is not None else 0
        self.apply_button.configure(text=f"Apply to {kept} image{'s' if kept != 1 else ''}")
        idle = self.busy is None
        self.apply_button.state(["!disabled"] if idle and kept else ["disabled"])
        self.rerun_button.state(["!disabled"] if idle else ["disabled"])
        self.cancel_button.state(["!disabled"] if not idle else ["disabled"])
        for button in self.not_this_buttons.values():
            button.state(["!disabled"] if idle else ["disabled"])
        count = event.count if event is not None else 0
        self.previous_button.state(["!disabled"] if idle and self.start > 0 else ["disabled"])
        self.next_button.state(["!disabled"] if idle and self.start + PAGE < count else ["disabled"])

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
        self.progress_label.configure(text=f"{item.relpath}: noted as 'not this'. Preview again to learn from it.")
        self._update_summary()

    def _page(self, start: int) -> None:
        if self.preview is not None and self.preview.plan_id:
            self.submit(msg.PreviewPage(self.preview.plan_id, start))
            self.progress_label.configure(text="Fetching the page...")

    def next_page(self) -> None:
        self._page(self.start + PAGE)

    def previous_page(self) -> None:
        self._page(max(0, self.start - PAGE))

    def rerun(self) -> None:
        self.submit(self.choices.preview_command())
        self.busy = "finding"
        self.summary_label.configure(text="Looking again, with your corrections...")
        self.progress_label.configure(text=STAGE_TEXT["finding"] + "...")
        self._update_buttons()

    def apply(self) -> None:
        """Write the reviewed plan; the window stays to show the progress and closes when the
        trainer says the masks are written (the panel closes it)."""
        plan_id = self.preview.plan_id if self.preview is not None else 0
        self.submit(self.choices.apply_command(plan_id))
        self.busy = "writing"
        self.progress_label.configure(text=STAGE_TEXT["writing"] + "...")
        self._update_buttons()

    def cancel(self) -> None:
        self.submit(msg.CancelPropagation())
        self.progress_label.configure(text="Cancelling...")
