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

This class is the widget skin: it builds the widgets, binds the keys and the mouse, keeps the
view (zoom, pan, tool, shape, radius) and draws. The rules live in pure modules, tested without
a display: `ui.brush.state.PaintRound` (the images, their masks and undo, the save policy, what
Done returns, the propagation link), `ui.brush.render.BrushRender` (the composite and its
caches) and `ui.brush.tools` (tools, shapes, radius steps, the status wording).
"""

from __future__ import annotations

import logging
import tkinter as tk
from tkinter import messagebox, ttk
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageTk

from app.run.messages import FeedbackItem, PropagationApplied
from ui.helpers.geometry import ZOOM_STEP, Fit, View, pan_view, radius_to_canvas, to_canvas, to_image, zoom_view
from ui.helpers.round_cost import RoundCost
from ui.tk_support.window_placement import restore_and_remember
from ui.widgets.scrollable import ScrollableFrame

from .autosave import MaskAutosaver
from .propagation_panel import PropagationPanel
from .render import BrushRender
from .state import SAVE_TIMEOUT_S, PaintRound
from .strokes import Box, flood_region, polygon_region, rectangle_region, union
from .tools import (
    MAX_RADIUS,
    MIN_RADIUS,
    SHAPE_KEYS,
    SHAPE_NAMES,
    SHAPES,
    TOOLS,
    clamp_radius,
    default_radius,
    status_text,
    stepped_radius,
    tool_text,
)

log = logging.getLogger(__name__)

__all__ = ["BrushWindow", "tool_text", "DEFAULT_OPACITY", "DEFAULT_PAINT_OPACITY", "SAVE_TIMEOUT_S", "MIN_RADIUS", "MAX_RADIUS"]

TOOL_FONT = ("TkDefaultFont", 10)
TOOL_FONT_SELECTED = ("TkDefaultFont", 10, "bold")
DEFAULT_CANVAS = 768  # canvas side in screen pixels (smaller on small screens)
SCREEN_MARGIN_H = 150  # screen pixels kept free above and below: title bar, status line, panels
SIDE_WIDTH = 360  # screen pixels the side panel and margins take beside the canvas
PROPAGATION_WIDTH = 290  # ... and the propagation panel's column
# Heatmap opacity in percent: faint, so it never hides what is to be painted (at 40 % the
# demo's dark swatch of a 9 vanished under it until H was pressed).
DEFAULT_OPACITY = 25
DEFAULT_PAINT_OPACITY = 50  # opacity of red / green paint on the canvas, percent
KEY_HELP = (
    "R / G / E: red, green, eraser\n"
    "B / M / L / F: brush, rectangle, lasso, fill\n"
    "[ ]: radius    H: heatmap\n"
    "Ctrl+wheel, + / -: zoom    0: fit\n"
    "Space+drag, middle drag, wheel: pan\n"
    "Ctrl+Z / Ctrl+Y: undo / redo\n"
    "Del: clear    S: skip\n"
    "← →: previous / next image\n"
    "Esc: cancel"
)


class BrushWindow(tk.Toplevel):
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
        self._region_start: Optional[Tuple[float, float]] = None  # rectangle: image point
        self._lasso: List[Tuple[float, float]] = []  # lasso: image points so far
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

    # ------------------------------------------------------------------------------ layout
    def _build(self, canvas_size: int) -> None:
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        self._build_canvas(canvas_size)
        self._build_side()
        # width=1: the status text must never widen the window (and so resize the canvas).
        self.status_label = ttk.Label(self, anchor="w", padding=(8, 3), relief="sunken", width=1)
        self.status_label.grid(row=1, column=0, columnspan=3, sticky="ew")
        if self.submit is not None:
            self._build_propagation()
        self._bind_canvas()

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
        # The rectangle's rubber band and the lasso's trace: one item each, moved, never
        # created per event.
        self._band_item = self.canvas.create_rectangle(0, 0, 0, 0, outline="white", dash=(4, 2), width=2, state="hidden")
        self._lasso_item = self.canvas.create_line(0, 0, 0, 0, fill="white", dash=(4, 2), width=2, state="hidden")

    def _build_side(self) -> None:
        """Labels of the image on screen, the brush and view panels, the buttons, the key help."""
        # The side panel scrolls when the screen is short (1280 x 720): its status and key
        # help stay reachable instead of falling off the bottom. The way out of the round
        # (navigation, the round's length, Cancel / Done) sits below it, never scrolled away:
        # Done needed scrolling even at 1600 x 1000.
        column = ttk.Frame(self)
        column.grid(row=0, column=1, sticky="ns")
        column.rowconfigure(0, weight=1)
        self.side_scroll = ScrollableFrame(column)
        self.side_scroll.grid(row=0, column=0, sticky="nsew")
        self.side_fixed = ttk.Frame(column, padding=(12, 0, 12, 8))
        self.side_fixed.grid(row=1, column=0, sticky="ew")
        side = self.side_scroll.body
        side.configure(padding=(12, 10))
        wrap = 250
        self.counter_label = ttk.Label(side, font=("TkDefaultFont", 13, "bold"))
        self.counter_label.pack(anchor="w")
        self.path_label = ttk.Label(side, wraplength=wrap, foreground="#555555")
        self.path_label.pack(anchor="w", pady=(0, 8))
        self.true_label = ttk.Label(side, font=("TkDefaultFont", 11), wraplength=wrap)
        self.true_label.pack(anchor="w")
        self.predicted_label = ttk.Label(side, font=("TkDefaultFont", 11), wraplength=wrap)
        self.predicted_label.pack(anchor="w")
        self.trust_label = ttk.Label(
            side, wraplength=wrap, foreground="#8a0000", text=f"\u26a0 {self.trust_note}" if self.trust_note else ""
        )
        if self.trust_note:
            self.trust_label.pack(anchor="w", pady=(2, 0))
        self.reason_label = ttk.Label(side, wraplength=wrap)
        self.reason_label.pack(anchor="w", pady=(4, 0))
        self.mask_label = ttk.Label(side, wraplength=wrap, foreground="#555555")
        self.mask_label.pack(anchor="w", pady=(2, 0))

        self._build_brush_panel(side)
        self._build_view_panel(side)
        self._build_navigation(side, wrap)
        self._build_finish(self.side_fixed, wrap)

    def _build_brush_panel(self, side: ttk.Frame) -> None:
        """Tools, shapes, radius, undo / redo / clear."""
        brush = ttk.LabelFrame(side, text="Brush", padding=8)
        brush.pack(fill="x", pady=(12, 0))
        self.tool_buttons = {}
        for name, text, colour in (
            ("red", "Red — not here (R)", "#ff8080"),
            ("green", "Green — look here (G)", "#80e080"),
            ("eraser", "Eraser (E)", "#9cc3ff"),  # not grey: selected, it looked unselected
        ):
            button = tk.Radiobutton(
                brush,
                text=text,
                value=name,
                variable=self.tool_var,
                indicatoron=False,
                selectcolor=colour,
                anchor="w",
                padx=8,
                pady=3,
                takefocus=False,
            )
            button.pack(fill="x", pady=1)
            self.tool_buttons[name] = button
        shapes = ttk.Frame(brush)
        shapes.pack(fill="x", pady=(6, 0))
        self.shape_buttons = {}
        for column, name in enumerate(SHAPES):
            button = tk.Radiobutton(
                shapes,
                text=f"{SHAPE_NAMES[name].capitalize()} ({SHAPE_KEYS[name]})",
                value=name,
                variable=self.shape_var,
                indicatoron=False,
                selectcolor="#c8d8f0",
                padx=2,
                pady=2,
                takefocus=False,
            )
            button.grid(row=column // 2, column=column % 2, sticky="ew", padx=1, pady=1)
            self.shape_buttons[name] = button
        shapes.columnconfigure(0, weight=1)
        shapes.columnconfigure(1, weight=1)
        ttk.Label(brush, text="Radius (image pixels)   [  ]").pack(anchor="w", pady=(8, 0))
        self.radius_scale = tk.Scale(
            brush,
            from_=MIN_RADIUS,
            to=MAX_RADIUS,
            orient="horizontal",
            variable=self.radius_var,
            resolution=1,
            takefocus=False,
            length=220,
        )
        self.radius_scale.pack(fill="x")
        edits = ttk.Frame(brush)
        edits.pack(fill="x", pady=(6, 0))
        self.undo_button = ttk.Button(edits, text="Undo", width=6, command=self.undo, takefocus=False)
        self.redo_button = ttk.Button(edits, text="Redo", width=6, command=self.redo, takefocus=False)
        self.clear_button = ttk.Button(edits, text="Clear", width=6, command=self.clear, takefocus=False)
        for button in (self.undo_button, self.redo_button, self.clear_button):
            button.pack(side="left", expand=True, fill="x", padx=1)

    def _build_view_panel(self, side: ttk.Frame) -> None:
        """Heatmap on / off and opacity, paint opacity, zoom."""
        heat = ttk.LabelFrame(side, text="View", padding=8)
        heat.pack(fill="x", pady=(12, 0))
        self.heatmap_check = ttk.Checkbutton(
            heat, text="Show heatmap (H)", variable=self.show_heatmap_var, command=self._render_all, takefocus=False
        )
        self.heatmap_check.pack(anchor="w")
        ttk.Label(heat, text="Opacity (%)").pack(anchor="w", pady=(6, 0))
        self.opacity_scale = tk.Scale(
            heat,
            from_=0,
            to=100,
            orient="horizontal",
            resolution=5,
            variable=self.opacity_var,
            takefocus=False,
            length=220,
            command=lambda _value: self._render_all(),
        )
        self.opacity_scale.pack(fill="x")
        ttk.Label(heat, text="Paint opacity (%)").pack(anchor="w", pady=(6, 0))
        self.paint_opacity_scale = tk.Scale(
            heat,
            from_=10,
            to=100,
            orient="horizontal",
            resolution=5,
            variable=self.paint_opacity_var,
            takefocus=False,
            length=220,
            command=lambda _value: self._render_all(),
        )
        self.paint_opacity_scale.pack(fill="x")
        zoom = ttk.Frame(heat)
        zoom.pack(fill="x", pady=(6, 0))
        self.zoom_out_button = ttk.Button(zoom, text="−", width=3, takefocus=False, command=lambda: self.zoom_by(1 / ZOOM_STEP))
        self.zoom_in_button = ttk.Button(zoom, text="+", width=3, takefocus=False, command=lambda: self.zoom_by(ZOOM_STEP))
        self.zoom_fit_button = ttk.Button(zoom, text="Fit", width=4, takefocus=False, command=self.zoom_fit)
        self.zoom_label = ttk.Label(zoom, text="100 %")
        for widget in (self.zoom_out_button, self.zoom_in_button, self.zoom_fit_button):
            widget.pack(side="left", padx=1)
        self.zoom_label.pack(side="left", padx=(6, 0))
        # on its own line: beside the buttons "(37.5 px per pixel)" was cut off
        self.scale_label = ttk.Label(heat, text="", foreground="#555555")
        self.scale_label.pack(anchor="w", pady=(2, 0))

    def _build_finish(self, fixed: ttk.Frame, wrap: int) -> None:
        """Previous / skip / next, the round's length, Cancel / Done: always in view."""
        navigation = ttk.Frame(fixed)
        navigation.pack(fill="x", pady=(8, 0))
        self.prev_button = ttk.Button(navigation, text="◀ Previous", command=self.previous, takefocus=False)
        self.skip_button = ttk.Button(navigation, text="Skip", command=self.skip, takefocus=False)
        self.next_button = ttk.Button(navigation, text="Next ▶", command=self.next, takefocus=False)
        for button in (self.prev_button, self.skip_button, self.next_button):
            button.pack(side="left", expand=True, fill="x", padx=1)
        self._build_round_length(fixed, wrap)
        finish = ttk.Frame(fixed)
        finish.pack(fill="x", pady=(8, 0))
        self.cancel_button = ttk.Button(finish, text="Cancel", command=self.cancel, takefocus=False)
        self.done_button = ttk.Button(finish, text="Done — fine-tune", command=self.done, takefocus=False)
        self.cancel_button.pack(side="left", expand=True, fill="x", padx=1)
        self.done_button.pack(side="left", expand=True, fill="x", padx=1)

    def _build_navigation(self, side: ttk.Frame, wrap: int) -> None:
        """The gallery and the key help (the way out is in `_build_finish`)."""
        if self.on_gallery is not None:
            self.gallery_button = ttk.Button(side, text="Gallery... (paint any image)", command=self.on_gallery, takefocus=False)
            self.gallery_button.pack(fill="x", pady=(8, 0))
        self.help_label = ttk.Label(side, text=KEY_HELP, wraplength=wrap, foreground="#666666", justify="left")
        self.help_label.pack(anchor="w", pady=(16, 0))

    def view_settings(self) -> Dict[str, Any]:
        """The view as the user left it (heatmap on/off, its opacity, the paint's): the next
        round's brush window opens with it (`view_settings=`) instead of the defaults."""
        return {
            "show_heatmap": bool(self.show_heatmap_var.get()),
            "opacity": int(self.opacity_var.get()),
            "paint_opacity": int(self.paint_opacity_var.get()),
        }

    def _restore_view_settings(self, settings: Dict[str, Any]) -> None:
        for key, var in (
            ("show_heatmap", self.show_heatmap_var),
            ("opacity", self.opacity_var),
            ("paint_opacity", self.paint_opacity_var),
        ):
            if key in settings:
                var.set(settings[key])

    def _show_tool(self) -> None:
        """The selected tool's button in bold (its fill colour alone was easy to miss)."""
        for name, button in self.tool_buttons.items():
            button.configure(font=TOOL_FONT_SELECTED if name == self.tool_var.get() else TOOL_FONT)

    def _build_round_length(self, side: ttk.Frame, wrap: int) -> None:
        """What Done will cost on this device, and the choice of a shorter round (`round_steps`)."""
        cost = self.round_cost
        self.round_steps_var = tk.IntVar(self, value=0)
        self.round_buttons: Dict[int, ttk.Radiobutton] = {}
        self.round_cost_label: Optional[ttk.Label] = None
        if cost is None:
            return
        self.round_cost_label = ttk.Label(side, text=cost.summary(), wraplength=wrap, justify="left")
        self.round_cost_label.pack(anchor="w", pady=(8, 0))
        lengths = [cost.max_steps] if cost.short_steps >= cost.max_steps else [cost.max_steps, cost.short_steps]
        self.round_steps_var.set(cost.short_steps if cost.suggest_short else cost.max_steps)
        for steps in lengths:
            label = "Full round: " if steps == cost.max_steps else "Shorter round: "
            button = ttk.Radiobutton(
                side, text=label + cost.choice_text(steps), value=steps, variable=self.round_steps_var, takefocus=False
            )
            button.pack(anchor="w")
            self.round_buttons[steps] = button

    @property
    def round_steps(self) -> Optional[int]:
        """The round length chosen (None: as configured)."""
        steps = int(self.round_steps_var.get() or 0)
        if self.round_cost is None or steps <= 0 or steps >= self.round_cost.max_steps:
            return None
        return steps

    def _build_propagation(self) -> None:
        """The "Apply to..." panel in a third column (with `submit`)."""
        column = ttk.Frame(self, padding=(0, 10, 12, 10))
        column.grid(row=0, column=2, sticky="ns")
        self.propagation = PropagationPanel(column, self.submit, self._propagation_source, on_applied=self._propagation_applied)
        self.propagation.pack(fill="both", expand=True)
        self.propagation.on_open_images = self.on_open_images
        listbox = getattr(self.propagation, "listbox", None)
        if listbox is not None and self.on_open_images is not None:
            # the preview's images open here for painting (double-click)
            listbox.bind("<Double-Button-1>", self._open_previewed, add="+")

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

    def _fit_screen(self) -> None:
        """Shrink the canvas until the window (side panel, propagation column) fits the
        screen's width; the side panel scrolls, so the height follows the canvas."""
        self.update_idletasks()
        others = self.winfo_reqwidth() - int(self.canvas["width"])
        room = self.winfo_screenwidth() - others - 16
        side = int(self.canvas["width"])
        if room < side:
            side = max(200, room)
        # As tall as the screen allows, not square: the side panel (whose way out, Done, is
        # always in view) gets the room, and a landscape screen's height is not wasted.
        height = max(200, self.winfo_screenheight() - SCREEN_MARGIN_H)
        self.canvas.configure(width=side, height=height)
        self.maxsize(self.winfo_screenwidth(), self.winfo_screenheight())

    def _bind_keys(self) -> None:
        bindings = {
            ("r", "R"): lambda: self.set_tool("red"),
            ("g", "G"): lambda: self.set_tool("green"),
            ("e", "E"): lambda: self.set_tool("eraser"),
            ("h", "H"): self.toggle_heatmap,
            ("bracketleft",): lambda: self.change_radius(-1),
            ("bracketright",): lambda: self.change_radius(+1),
            ("Control-z", "Control-Z"): self.undo,
            ("Control-y", "Control-Y"): self.redo,
            ("Delete",): self.clear,
            ("Left",): self.previous,
            ("Right",): self.next,
            ("s", "S"): self.skip,
            ("Escape",): self.cancel,
            ("b", "B"): lambda: self.set_shape("brush"),
            ("m", "M"): lambda: self.set_shape("rectangle"),
            ("l", "L"): lambda: self.set_shape("lasso"),
            ("f", "F"): lambda: self.set_shape("fill"),
            ("plus", "equal", "KP_Add"): lambda: self.zoom_by(ZOOM_STEP),
            ("minus", "KP_Subtract"): lambda: self.zoom_by(1 / ZOOM_STEP),
            ("0", "KP_0"): self.zoom_fit,
        }
        for keys, action in bindings.items():
            for key in keys:
                # Bound on the toplevel: every widget of the window has it in its bindtags.
                self.bind(f"<{key}>" if "-" in key else f"<KeyPress-{key}>", lambda _event, act=action: (act(), "break")[1])
        self.bind("<KeyPress-space>", lambda _e: self._space(True))
        self.bind("<KeyRelease-space>", lambda _e: self._space(False))

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
    def fit(self) -> Optional[Fit]:
        """Where the image lies on the canvas (`ui.helpers.geometry.to_canvas(window.fit, x, y)`)."""
        return self.render.fit

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

    def _shape_changed(self) -> None:
        self._cancel_region()
        self.canvas.configure(cursor="tcross" if self.shape != "brush" else "crosshair")
        self._move_cursor()
        self._update_status()

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
        self._apply(self.paint_round.undo())

    def redo(self) -> None:
        self._apply(self.paint_round.redo())

    def clear(self) -> None:
        """Erase all paint on this image (undoable)."""
        self._apply(self.paint_round.clear())

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

    # --------------------------------------------------------------------------- mouse
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
        shape = self.shape
        if shape == "brush":
            self._schedule(self.paint_round.begin_stroke(x, y, self.radius, TOOLS[self.tool]))
        elif shape == "rectangle":
            self._region_start = (x, y)
            self._show_band(x, y)
        elif shape == "lasso":
            self._lasso = [(x, y)]
            self._show_lasso()
        elif shape == "fill":
            self._apply_region(flood_region(self.mask, x, y))
        self._move_cursor()

    def _on_drag(self, event) -> None:
        if self._pan_from is not None:
            self._pan_move(event)
            return
        x, y = self._image_point(event)
        shape = self.shape
        if shape == "brush":
            self._schedule(self.paint_round.extend_stroke(x, y))
        elif shape == "rectangle" and self._region_start is not None:
            self._show_band(x, y)
        elif shape == "lasso" and self._lasso:
            self._lasso.append((x, y))
            self._show_lasso()
        self._move_cursor()

    def _on_release(self, event) -> None:
        if self._pan_from is not None:
            self._pan_end()
            return
        x, y = self._image_point(event)
        if self.paint_round.drawing:
            self._schedule(self.paint_round.extend_stroke(x, y))
        elif self._region_start is not None:
            start = self._region_start
            self._cancel_region()
            self._apply_region(rectangle_region(self.mask.shape, *start, x, y))
        elif self._lasso:
            points = self._lasso + [(x, y)]
            self._cancel_region()
            self._apply_region(polygon_region(self.mask.shape, points))
        self._end_stroke()

    def _apply_region(self, region: np.ndarray) -> None:
        """A rectangle, lasso or fill: one undoable edit, saved like a stroke."""
        self._apply(self.paint_round.apply_region(region, TOOLS[self.tool]))

    def _show_band(self, x: float, y: float) -> None:
        x0, y0 = to_canvas(self.fit, *self._region_start)
        x1, y1 = to_canvas(self.fit, x, y)
        self.canvas.coords(self._band_item, x0, y0, x1, y1)
        self.canvas.itemconfigure(self._band_item, state="normal")
        self.canvas.tag_raise(self._band_item)

    def _show_lasso(self) -> None:
        points = [c for point in self._lasso for c in to_canvas(self.fit, *point)]
        if len(points) < 4:
            points = points + points
        self.canvas.coords(self._lasso_item, *points)
        self.canvas.itemconfigure(self._lasso_item, state="normal")
        self.canvas.tag_raise(self._lasso_item)

    def _cancel_region(self) -> None:
        self._region_start = None
        self._lasso = []
        if hasattr(self, "_band_item"):
            self.canvas.itemconfigure(self._band_item, state="hidden")
            self.canvas.itemconfigure(self._lasso_item, state="hidden")

    # ----------------------------------------------------------------------------- zoom / pan
    def _space(self, down: bool) -> None:
        self._space_down = down
        if self._pan_from is None:
            self.canvas.configure(cursor="fleur" if down else ("tcross" if self.shape != "brush" else "crosshair"))

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
        if self.shape != "brush":
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

    def _schedule(self, box: Optional[Box]) -> None:
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

    def _apply(self, box: Optional[Box]) -> None:
        """After an edit that saved itself (undo / redo / clear / region): refresh what changed."""
        if box is not None:
            self._schedule(box)
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
