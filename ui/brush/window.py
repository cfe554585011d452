"""The brush window: paint red ("not here") and green ("look here") on the images of a round.

For each `FeedbackItem` the window shows the image scaled to fill the canvas with the model's
saliency heatmap over it, the labels and why the image was chosen, and lets the user paint a
mask at the image's own resolution. The picture on the canvas is ONE `PhotoImage` (the
composite of image, heatmap and paint): a mouse move paints into the numpy mask and schedules
one refresh of the touched region, so the brush stays smooth however many motion events arrive.

Saving: every finished stroke (and every undo, redo, clear) hands the image's mask to a
`MaskAutosaver`, which writes it atomically in a background thread (a burst of strokes costs
one write of the latest state); a mask left empty deletes the stored file. A crash or `kill -9`
therefore loses at most the stroke being drawn. Leaving an image (previous, next, skip, done,
cancel, closing) waits for its write; a write that failed is shown in the status line at once
and in a dialog when leaving, and, when the window is destroyed from outside, passed to
`on_save_failed(message)` so it reaches the user, not only the log.

With a `submit` callable (the trainer's), a third column holds the "Apply to..." panel
(`ui.brush.propagation_panel`): it saves the image's mask, then asks the trainer to preview or apply
propagating its red; after an apply, this round's other images reload their (now propagated)
masks unless the user has changed them here.

Skip moves on like Next without asking for paint (and finishes the round on the last image);
it never writes an empty mask, keeps an earlier mask untouched, and honours a clear done on
this visit (the cleared mask is deleted), exactly like leaving the image any other way.

This class is the widget skin: it keeps the view (zoom, pan, tool, shape, radius), navigates
and saves. Its widgets and keys are built by `ui.brush.panels.BrushPanels`; the canvas (mouse,
zoom and pan, cursor, drawing) is `ui.brush.canvas.BrushCanvas`, which hands the left button to
the selected shape's object (`ui.brush.shapes`). The rules live in pure modules, tested without
a display: `ui.brush.state.PaintRound` (the images, their masks and undo, the save policy, what
Done returns, the propagation link), `ui.brush.render.BrushRender` (the composite and its
caches) and `ui.brush.tools` (tools, shapes, radius steps, the status wording).
"""

from __future__ import annotations

import logging
import tkinter as tk
from tkinter import messagebox
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from PIL import ImageTk

from app.run.messages import FeedbackItem, PropagationApplied
from ui.helpers.geometry import View
from ui.helpers.round_cost import RoundCost
from ui.tk_support.window_placement import restore_and_remember

from .autosave import MaskAutosaver
from .canvas import BrushCanvas
from .panels import DEFAULT_CANVAS, PROPAGATION_WIDTH, SCREEN_MARGIN_H, SIDE_WIDTH, BrushPanels
from .render import BrushRender
from .shapes import ShapeTool
from .state import SAVE_TIMEOUT_S, PaintRound
from .strokes import Box
from .tools import MAX_RADIUS, MIN_RADIUS, SHAPES, TOOLS, clamp_radius, default_radius, stepped_radius, tool_text

log = logging.getLogger(__name__)

__all__ = ["BrushWindow", "tool_text", "DEFAULT_OPACITY", "DEFAULT_PAINT_OPACITY", "SAVE_TIMEOUT_S", "MIN_RADIUS", "MAX_RADIUS"]

# Heatmap opacity in percent: faint, so it never hides what is to be painted (at 40 % the
# demo's dark swatch of a 9 vanished under it until H was pressed).
DEFAULT_OPACITY = 25
DEFAULT_PAINT_OPACITY = 50  # opacity of red / green paint on the canvas, percent


class BrushWindow(BrushPanels, BrushCanvas, tk.Toplevel):
    """Paint masks on the images of one feedback round.

    items: the images offered (at least one). masks: the session's `datasets.MaskStore`.
    on_done(relpaths): called after Done with the relpaths of this round's images that have a
    mask in the store. on_cancel(): called after Cancel, Escape or closing the window.
    `self.result` becomes `("done", relpaths)` or `("cancel", ())`; the window then destroys
    itself. `canvas_size` (screen pixels) defaults to 768, less on a small screen.
    submit(command): with it, the window shows the propagation panel (`self.propagation`,
    else None), whose trainer commands go through it.
    """

    def __init__(
        self,
        master: tk.Misc,
        items: Sequence[FeedbackItem],
        masks,
        *,
        round_number: int = 1,
        on_done: Optional[Callable[[Tuple[str, ...]], None]] = None,
        on_cancel: Optional[Callable[[], None]] = None,
        canvas_size: Optional[int] = None,
        submit: Optional[Callable[[Any], None]] = None,
        on_save_failed: Optional[Callable[[str], None]] = None,
        trust_note: str = "",
        on_gallery: Optional[Callable[[], None]] = None,
        on_open_images: Optional[Callable[[Sequence[str]], None]] = None,
        geometry_store: Any = None,
        round_cost: Optional[RoundCost] = None,
        view_settings: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.paint_round = PaintRound(items, masks)  # the masks and their saving; raises on no items
        try:
            super().__init__(master)
        except BaseException:
            self.paint_round.close(0)  # no window: end the writer thread it started
            raise
        self.round_number = round_number
        self.on_done = on_done
        self.on_cancel = on_cancel
        self.submit = submit
        self.on_save_failed = on_save_failed
        self.trust_note = trust_note  # "the numbers may mean nothing" (app.engine.trust_checks)
        self.on_gallery = on_gallery  # "Gallery...": paint any training image
        self.on_open_images = on_open_images  # double-click in the propagation preview
        self.round_cost = round_cost  # what Done will cost on this device (ui.helpers.round_cost), or None
        self._save_poll: Optional[str] = None
        self.propagation = None  # the "Apply to..." panel, built when `submit` is given
        self.result: Optional[Tuple[str, Tuple[str, ...]]] = None
        self.render = BrushRender()  # the composite on screen and its caches
        self.view = View()  # zoom and pan of the image on screen (reset per image)
        self._pan_from: Optional[Tuple[float, float]] = None  # canvas point a pan drag began
        self._space_down = False
        self._gesture: Optional[ShapeTool] = None  # the shape that got the press being dragged
        self._photo: Optional[ImageTk.PhotoImage] = None  # the one picture on the canvas
        self._pending: Optional[Box] = None  # mask region waiting for the next refresh
        self._refresh_job: Optional[str] = None
        self._pointer: Optional[Tuple[float, float]] = None  # last canvas point of the mouse
        self._closed = False

        self.tool_var = tk.StringVar(self, value="red")
        self.radius_var = tk.IntVar(self, value=default_radius(self.paint_round.images[0].shape))
        self.opacity_var = tk.IntVar(self, value=DEFAULT_OPACITY)
        self.paint_opacity_var = tk.IntVar(self, value=DEFAULT_PAINT_OPACITY)
        self.shape_var = tk.StringVar(self, value="brush")
        self.show_heatmap_var = tk.BooleanVar(self, value=True)
        self._restore_view_settings(view_settings or {})

        fit_screen = canvas_size is None
        if canvas_size is None:
            extra = PROPAGATION_WIDTH if submit is not None else 0
            canvas_size = min(
                DEFAULT_CANVAS, self.winfo_screenheight() - SCREEN_MARGIN_H, self.winfo_screenwidth() - SIDE_WIDTH - extra
            )
        self.title(f"Paint feedback — round {round_number}")
        self.transient(master.winfo_toplevel())
        self._build(max(200, int(canvas_size)))
        if fit_screen:
            self._fit_screen()
        restore_and_remember(self, "brush", geometry_store)  # the size the user left it at
        self._bind_keys()
        self.protocol("WM_DELETE_WINDOW", self.cancel)
        self.bind("<Destroy>", self._on_destroy, add="+")
        self.tool_var.trace_add("write", lambda *_: (self._show_tool(), self._update_status()))
        self.shape_var.trace_add("write", lambda *_: self._shape_changed())
        self.radius_var.trace_add("write", lambda *_: self._radius_changed())
        self._show_tool()
        self.show(0)
        self.canvas.focus_set()

    # ------------------------------------------------------------------------ public actions
    @property
    def items(self) -> Tuple[FeedbackItem, ...]:
        """The round's images (more come with `add_items`)."""
        return self.paint_round.items

    @property
    def index(self) -> int:
        """The image on screen, 0-based."""
        return self.paint_round.index

    @property
    def item(self) -> FeedbackItem:
        """The item on screen."""
        return self.paint_round.item

    @property
    def autosaver(self) -> MaskAutosaver:
        """The background writer of the masks."""
        return self.paint_round.autosaver

    @property
    def mask(self) -> np.ndarray:
        """The mask of the image on screen (H x W int8, live)."""
        return self.paint_round.mask

    @property
    def tool(self) -> str:
        """The tool in use: "red", "green" or "eraser"."""
        return self.tool_var.get()

    @property
    def radius(self) -> int:
        """Brush radius in image pixels."""
        return int(self.radius_var.get())

    def set_tool(self, tool: str) -> None:
        """Choose "red", "green" or "eraser"."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.tool_var.set(tool)

    @property
    def shape(self) -> str:
        """How paint goes down: "brush", "rectangle", "lasso" or "fill"."""
        return self.shape_var.get()

    def set_shape(self, shape: str) -> None:
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}")
        self.shape_var.set(shape)

    def set_radius(self, radius: int) -> None:
        """Brush radius in image pixels, clamped to [1, 80]."""
        self.radius_var.set(clamp_radius(radius))

    def change_radius(self, direction: int) -> None:
        """`]` / `[`: one pixel at a time up to 10, then in steps of a fifth of the radius."""
        self.set_radius(stepped_radius(self.radius, direction))

    def toggle_heatmap(self) -> None:
        self.show_heatmap_var.set(not self.show_heatmap_var.get())
        self._render_all()

    def undo(self) -> None:
        self.apply_edit(self.paint_round.undo())

    def redo(self) -> None:
        self.apply_edit(self.paint_round.redo())

    def clear(self) -> None:
        """Erase all paint on this image (undoable)."""
        self.apply_edit(self.paint_round.clear())

    def previous(self) -> None:
        if not self.paint_round.is_first and self._leave_image():
            self.show(self.index - 1)

    def next(self) -> None:
        if not self.paint_round.is_last and self._leave_image():
            self.show(self.index + 1)

    def skip(self) -> None:
        """Move on without painting; on the last image this finishes the round like Done."""
        if self.paint_round.is_last:
            self.done()
        elif self._leave_image():
            self.show(self.index + 1)

    def done(self) -> None:
        """Save, report the round's annotated images through on_done, close."""
        if self._closed or not self._leave_image():
            return
        result = self.paint_round.result(done=True)
        self._finish(result, lambda: self.on_done and self.on_done(result[1]))

    def cancel(self) -> None:
        """Save what was painted, tell on_cancel, close."""
        if self._closed:
            return
        if not self._leave_image() and not messagebox.askyesno(
            "Close without saving?", "The strokes on this image could not be saved. Close anyway and lose them?", parent=self
        ):
            return
        self._finish(self.paint_round.result(done=False), lambda: self.on_cancel and self.on_cancel())

    def show(self, index: int) -> None:
        """Display image `index` (0-based) without saving the current one."""
        self._end_stroke()
        self._cancel_region()
        if int(index) != self.index:
            self.view = View()  # each image opens whole
        self.paint_round.go_to(index)
        item, image = self.item, self.paint_round.image
        count = len(self.items)
        self.counter_label.configure(text=f"Image {self.index + 1} of {count}")
        self.path_label.configure(text=item.relpath)
        self.true_label.configure(text=f"True label: {item.true_label}")
        right = item.predicted_label == item.true_label
        self.predicted_label.configure(
            text=f"Predicted: {item.predicted_label} ({item.confidence:.0%})" + ("" if right else "  ✗"),
            foreground="#1a7f1a" if right else "#c00000",
        )
        self.reason_label.configure(text=f"Chosen: {item.reason}" if item.reason else "")
        self.mask_label.configure(
            text=f"{image.shape[1]} × {image.shape[0]} px" + (" · has a saved mask" if self.paint_round.has_stored_mask() else "")
        )
        self.prev_button.state(["!disabled" if not self.paint_round.is_first else "disabled"])
        self.next_button.state(["!disabled" if not self.paint_round.is_last else "disabled"])
        self.skip_button.configure(text="Skip & finish" if self.paint_round.is_last else "Skip")
        if self.propagation is not None:
            self.propagation.set_image(item.relpath, item.true_label)
        self._render_all()

    def _open_previewed(self, _event=None) -> None:
        listbox = self.propagation.listbox
        relpaths = [listbox.get(i) for i in listbox.curselection()]
        if relpaths and self.on_open_images is not None:
            self.on_open_images(tuple(relpaths))

    def add_items(self, items: Sequence[FeedbackItem]) -> int:
        """Add images to paint (from the gallery, the reasonability window or a propagation
        preview) and show the first of them; an image already here is shown, not repeated.
        Returns how many were added."""
        if self._closed:
            return 0
        added, first = self.paint_round.add(items)
        if first is not None and first != self.index and self._leave_image():
            self.show(first)
        elif first is not None:
            self.show(self.index)  # counters and buttons know the new count
        return added

    # ---------------------------------------------------------------------- propagation
    def _propagation_source(self) -> Tuple[Optional[str], str]:
        """Save the mask on screen; (relpath, "") when it has red to propagate."""
        if self._closed:
            return None, "The window is closing."
        if not self._leave_image():
            return None, "The mask of this image could not be saved, so it cannot be propagated."
        self._update_status()
        return self.paint_round.propagation_source()

    def _propagation_applied(self, event: PropagationApplied) -> None:
        """Other images of this round may have got a propagated mask: reload those the user
        has not changed here (a changed one was saved on leaving it, so it was skipped)."""
        self.paint_round.propagation_applied(event.relpaths)

    # ---------------------------------------------------------------------- saving
    def _leave_image(self, report: bool = True) -> bool:
        """Save the mask on screen if it changed; False when saving failed (with a dialog when
        `report`)."""
        self._end_stroke()
        error = self.paint_round.leave(SAVE_TIMEOUT_S)
        self._watch_saves()  # only when the write outlasted the wait
        self._update_status()  # "saved", or why not
        if error is None:
            return True
        if report:
            relpath = self.item.relpath
            messagebox.showerror("Cannot save the mask", f"The mask of {relpath} could not be saved: {error}", parent=self)
        return False

    def _watch_saves(self) -> None:
        """After an edit was handed to the writer: show "saving..." until it is written, and a
        failed write at once (a timer polls the writer while it is busy)."""
        if self._save_poll is None and not self._closed and not self.autosaver.idle:
            self._save_poll = self.after(50, self._poll_saves)

    def _poll_saves(self) -> None:
        """Show "saving..." until the writer is idle, and a failed write at once."""
        self._save_poll = None
        if self._closed:
            return
        self._update_status()
        if not self.autosaver.idle:
            self._save_poll = self.after(100, self._poll_saves)

    def _cancel_timers(self) -> None:
        for name in ("_refresh_job", "_save_poll"):
            job = getattr(self, name)
            if job is not None:
                try:
                    self.after_cancel(job)
                except tk.TclError:
                    pass
                setattr(self, name, None)

    def _finish(self, result, callback: Callable[[], object]) -> None:
        self._closed = True
        self.result = result
        self._cancel_timers()
        self.paint_round.close()
        try:
            callback()
        finally:
            if self.winfo_exists():
                self.destroy()

    def _on_destroy(self, event) -> None:
        """Destroyed from outside (the app closing): save the paint on screen, no dialogs."""
        if event.widget is not self or self._closed:
            return
        self._closed = True  # no more timers or redraws: the widgets are going
        if not self._leave_image(report=False):
            relpath = self.item.relpath
            error = self.autosaver.failures().get(relpath, "it did not finish in time")
            message = f"The mask of {relpath} could not be saved: {error}"
            log.error("%s", message)
            if self.on_save_failed is not None:
                self.on_save_failed(message)
        self._cancel_timers()
        self.paint_round.close()
