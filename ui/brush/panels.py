"""The brush window's panels: the side column (the image's labels, the brush and view panels,
the way out of the round), the "Apply to..." column, the key bindings, and fitting the screen.

`BrushPanels` is the part of `BrushWindow` (`ui.brush.window`) that builds its widgets; they are
kept as attributes (`done_button`, `radius_scale`, ...) so a test can `invoke()` them. A mixin,
split out of the window only to keep one concept per file.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Any, Dict, Optional

from ui.helpers.geometry import ZOOM_STEP
from ui.widgets.scrollable import ScrollableFrame

from .propagation_panel import PropagationPanel
from .tools import MAX_RADIUS, MIN_RADIUS, SHAPE_KEYS, SHAPE_NAMES, SHAPES

__all__ = ["BrushPanels", "DEFAULT_CANVAS", "KEY_HELP", "PROPAGATION_WIDTH", "SCREEN_MARGIN_H", "SIDE_WIDTH"]

TOOL_FONT = ("TkDefaultFont", 10)
TOOL_FONT_SELECTED = ("TkDefaultFont", 10, "bold")
DEFAULT_CANVAS = 768  # canvas side in screen pixels (smaller on small screens)
SCREEN_MARGIN_H = 150  # screen pixels kept free above and below: title bar, status line, panels
SIDE_WIDTH = 360  # screen pixels the side panel and margins take beside the canvas
PROPAGATION_WIDTH = 290  # ... and the propagation panel's column
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


class BrushPanels:
    """The widgets of `BrushWindow` around its canvas (a mixin)."""

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
