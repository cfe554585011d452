"""The brush window's canvas: the mouse, zoom and pan, the brush cursor, and the one picture.

`BrushCanvas` is the part of `BrushWindow` (`ui.brush.window`) that owns the canvas. The left
button goes to the selected shape (`ui.brush.shapes`: brush, rectangle, lasso, fill), unless
Space is held (then it pans, like the middle button). The picture is ONE `PhotoImage` (the
composite of `ui.brush.render.BrushRender`): a mouse move paints into the numpy mask and
schedules one refresh of the touched region, so the brush stays smooth however many motion
events arrive.

A mixin, not a window of its own: it reads the window's state (`paint_round`, `view`, the
tool's and view's Tk variables) and is split out of `BrushWindow` only to keep one concept per
file.
"""

from __future__ import annotations

import tkinter as tk
from typing import Dict, Optional, Tuple

from PIL import Image, ImageTk

from ui.helpers.geometry import ZOOM_STEP, Fit, View, pan_view, radius_to_canvas, to_image, zoom_view

from .render import BrushRender
from .shapes import ShapeTool, make_shapes
from .state import PaintRound
from .strokes import Box, union
from .tools import TOOLS, status_text

__all__ = ["BrushCanvas"]


class BrushCanvas:
    """The canvas of `BrushWindow`: mouse, zoom / pan, cursor and drawing (a mixin)."""

    canvas: tk.Canvas
    paint_round: PaintRound
    render: BrushRender
    view: View
    shapes: Dict[str, ShapeTool]

    # ------------------------------------------------------------------------------ canvas
    def _build_canvas(self, canvas_size: int) -> None:
        self.canvas = tk.Canvas(
            self, width=canvas_size, height=canvas_size, background="#1e1e1e", highlightthickness=0, cursor="crosshair"
        )
        self.canvas.grid(row=0, column=0, sticky="nsew")
        self._image_item = self.canvas.create_image(0, 0, anchor="nw")
        # The brush cursor: a dark and a light circle, visible on any background. Two canvas
        # items for the whole window, moved with `coords`, never created per event.
        self._cursor_items = (
            self.canvas.create_oval(0, 0, 0, 0, outline="black", width=3, state="hidden"),
            self.canvas.create_oval(0, 0, 0, 0, outline="white", width=1, state="hidden"),
        )
        # One object per shape (the rectangle's rubber band and the lasso's trace are theirs).
        self.shapes = make_shapes(self)

    def _bind_canvas(self) -> None:
        self.canvas.bind("<Configure>", lambda _e: self._render_all())
        self.canvas.bind("<ButtonPress-1>", self._on_press)
        self.canvas.bind("<B1-Motion>", self._on_drag)
        self.canvas.bind("<ButtonRelease-1>", self._on_release)
        self.canvas.bind("<Motion>", self._on_motion)
        self.canvas.bind("<Leave>", lambda _e: self._hide_cursor())
        # pan: the middle button, or the left one with Space held
        self.canvas.bind("<ButtonPress-2>", self._pan_start)
        self.canvas.bind("<B2-Motion>", self._pan_move)
        self.canvas.bind("<ButtonRelease-2>", lambda _e: self._pan_end())
        # wheel: Ctrl zooms at the pointer, Shift pans sideways, plain pans up and down
        for sequence, direction in (("<Button-4>", 1), ("<Button-5>", -1)):
            self.canvas.bind(sequence, lambda e, d=direction: self._on_wheel(e, d))
        self.canvas.bind("<MouseWheel>", lambda e: self._on_wheel(e, 1 if e.delta > 0 else -1))

    # ------------------------------------------------------------------------------ zoom / pan
    def _canvas_size(self) -> Tuple[int, int]:
        width, height = self.canvas.winfo_width(), self.canvas.winfo_height()
        if width <= 1 or height <= 1:  # not mapped yet: the requested size
            width, height = int(self.canvas["width"]), int(self.canvas["height"])
        return width, height

    def zoom_by(self, factor: float, x: Optional[float] = None, y: Optional[float] = None) -> None:
        """Zoom by `factor` about canvas point (x, y) (the canvas centre by default)."""
        width, height = self._canvas_size()
        image = self.paint_round.image
        x = width / 2 if x is None else x
        y = height / 2 if y is None else y
        self.view = zoom_view(self.view, image.shape[1], image.shape[0], width, height, x, y, factor)
        self._render_all()

    def zoom_fit(self) -> None:
        """Back to the whole image (key 0)."""
        self.view = View()
        self._render_all()

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the zoomed picture by (dx, dy) canvas pixels."""
        width, height = self._canvas_size()
        image = self.paint_round.image
        view = pan_view(self.view, image.shape[1], image.shape[0], width, height, dx, dy)
        if view != self.view:
            self.view = view
            self._render_all()

    def _space(self, down: bool) -> None:
        self._space_down = down
        if self._pan_from is None:
            self.canvas.configure(cursor="fleur" if down else self.shape_tool.cursor)

    def _pan_start(self, event) -> None:
        self._end_stroke()
        self._cancel_region()
        self._pan_from = (float(event.x), float(event.y))
        self.canvas.configure(cursor="fleur")

    def _pan_move(self, event) -> None:
        if self._pan_from is None:
            return
        x0, y0 = self._pan_from
        self._pan_from = (float(event.x), float(event.y))
        self.pan_by(event.x - x0, event.y - y0)

    def _pan_end(self) -> None:
        self._pan_from = None
        self._space(self._space_down)

    def _on_wheel(self, event, direction: int) -> None:
        control = bool(event.state & 0x0004)
        shift = bool(event.state & 0x0001)
        if control:
            self.zoom_by(
                ZOOM_STEP if direction > 0 else 1 / ZOOM_STEP, self.canvas.canvasx(event.x), self.canvas.canvasy(event.y)
            )
        elif shift:
            self.pan_by(40 * direction, 0)
        else:
            self.pan_by(0, 40 * direction)

    def _on_motion(self, event) -> None:
        self._image_point(event)
        self._move_cursor()

    def _end_stroke(self) -> None:
        """Finish a stroke under way: it is saved in the background at once."""
        if self.paint_round.end_stroke():
            self._watch_saves()
            self._update_status()

    def _move_cursor(self) -> None:
        if self._pointer is None or self.fit is None:
            return
        if not self.shape_tool.shows_brush_cursor:
            for item in self._cursor_items:
                self.canvas.itemconfigure(item, state="hidden")
            return
        x, y = self._pointer
        r = max(1.0, radius_to_canvas(self.fit, self.radius))
        for item in self._cursor_items:
            self.canvas.coords(item, x - r, y - r, x + r, y + r)
            self.canvas.itemconfigure(item, state="normal")
        self.canvas.tag_raise(self._cursor_items[0])
        self.canvas.tag_raise(self._cursor_items[1])

    def _hide_cursor(self) -> None:
        self._pointer = None
        for item in self._cursor_items:
            self.canvas.itemconfigure(item, state="hidden")

    def _radius_changed(self) -> None:
        self._move_cursor()
        self._update_status()

    # --------------------------------------------------------------------------- mouse
    @property
    def fit(self) -> Optional[Fit]:
        """Where the image lies on the canvas (`ui.helpers.geometry.to_canvas(window.fit, x, y)`)."""
        return self.render.fit

    @property
    def shape_tool(self) -> ShapeTool:
        """The object of the shape selected, which gets the left button."""
        return self.shapes[self.shape]

    @property
    def paint_value(self) -> int:
        """The mask value the tool puts down (`ui.brush.tools.TOOLS`)."""
        return TOOLS[self.tool]

    def _image_point(self, event) -> Tuple[float, float]:
        x, y = self.canvas.canvasx(event.x), self.canvas.canvasy(event.y)
        self._pointer = (x, y)
        return to_image(self.fit, x, y)

    def _on_press(self, event) -> None:
        self.canvas.focus_set()
        if self._space_down:
            self._pan_start(event)
            return
        x, y = self._image_point(event)
        self._gesture = self.shape_tool  # the release goes to the shape that began the gesture
        self._gesture.press(x, y)
        self._move_cursor()

    def _on_drag(self, event) -> None:
        if self._pan_from is not None:
            self._pan_move(event)
            return
        x, y = self._image_point(event)
        self.shape_tool.drag(x, y)
        self._move_cursor()

    def _on_release(self, event) -> None:
        if self._pan_from is not None:
            self._pan_end()
            return
        x, y = self._image_point(event)
        gesture, self._gesture = self._gesture or self.shape_tool, None
        gesture.release(x, y)
        self._end_stroke()

    def _cancel_region(self) -> None:
        """Drop a rectangle or lasso under way (a brush stroke is ended by `_end_stroke`)."""
        for shape in getattr(self, "shapes", {}).values():
            shape.cancel()

    def _shape_changed(self) -> None:
        self._cancel_region()
        self.canvas.configure(cursor=self.shape_tool.cursor)
        self._move_cursor()
        self._update_status()

    # ------------------------------------------------------------------------- drawing
    def _render_all(self) -> None:
        """Recompute the displayed picture for the current canvas size, heatmap and mask."""
        if self._closed:
            return
        canvas = self._canvas_size()
        image = self.paint_round.image
        opacity = self.opacity_var.get() / 100.0 if self.show_heatmap_var.get() else 0.0
        composite = self.render.render(
            self.index,
            image,
            self.item.saliency,
            self.mask,
            canvas,
            self.view,
            heat_opacity=opacity,
            paint_opacity=self.paint_opacity_var.get() / 100.0,
        )
        picture = Image.fromarray(composite)
        if self._photo is None or (self._photo.width(), self._photo.height()) != picture.size:
            self._photo = ImageTk.PhotoImage(picture, master=self)
            self.canvas.itemconfigure(self._image_item, image=self._photo)
        else:
            self._photo.paste(picture)
        fit, (x0, y0) = self.fit, self.render.origin
        self.canvas.coords(self._image_item, fit.offset_x + x0, fit.offset_y + y0)
        zoom = self.render.zoom(image.shape, canvas)
        self.zoom_label.configure(text=f"{zoom * 100:.0f} %")
        self.scale_label.configure(text=f"1 image pixel = {fit.scale:.3g} screen pixels")
        self._pending = None
        self._move_cursor()
        self._update_status()

    def schedule_refresh(self, box: Optional[Box]) -> None:
        """Queue a refresh of `box`; motion events arriving meanwhile merge into one refresh."""
        if box is None:
            return
        self._pending = union(self._pending, box)
        if self._refresh_job is None:
            self._refresh_job = self.after_idle(self._refresh)

    def _refresh(self) -> None:
        """Redraw the pending region of the composite and push it to the one PhotoImage."""
        self._refresh_job = None
        box, self._pending = self._pending, None
        if box is None or self._closed:
            return
        changed = self.render.refresh(self.mask, box, self.paint_opacity_var.get() / 100.0)
        if changed is None:
            return
        left, top, patch = changed
        # Only the touched rectangle goes to Tk: a small PhotoImage copied into the big one
        # costs about a millisecond, pasting the whole 768 x 768 composite several.
        photo = ImageTk.PhotoImage(Image.fromarray(patch), master=self)
        self.tk.call(str(self._photo), "copy", str(photo), "-to", left, top)
        self._update_status()

    def apply_edit(self, box: Optional[Box]) -> None:
        """After an edit that saved itself (undo / redo / clear / region): refresh what changed."""
        if box is not None:
            self.schedule_refresh(box)
        self._watch_saves()
        self._update_status()

    def _update_status(self) -> None:
        if self._closed or not self.paint_round.loaded:
            return
        paint = self.paint_round
        history = paint.history
        self.undo_button.state(["!disabled" if history.can_undo else "disabled"])
        self.redo_button.state(["!disabled" if history.can_redo else "disabled"])
        self.clear_button.state(["!disabled" if paint.mask.any() else "disabled"])
        red, green = paint.paint_counts()
        saving, failed = paint.save_status()
        self.status_label.configure(
            text=status_text(self.tool, self.shape, self.radius, history.undo_depth, red, green, saving),
            foreground="#c00000" if failed else "",
        )
