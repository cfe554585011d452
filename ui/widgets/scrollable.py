"""A frame that scrolls vertically when its content is taller than the room it gets.

Used for the columns that must stay reachable on a 1280 x 720 screen (the main window's
settings column, the brush window's side panel): put widgets in `frame.body`. The scrollbar
shows only when needed; the mouse wheel scrolls while the pointer is over the frame.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk


class ScrollableFrame(ttk.Frame):
    """`body` is the inner frame; its requested width becomes this frame's width."""

    def __init__(self, master: tk.Misc, **options) -> None:
        super().__init__(master, **options)
        self.canvas = tk.Canvas(self, highlightthickness=0, borderwidth=0)
        self.scrollbar = ttk.Scrollbar(self, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(yscrollcommand=self.scrollbar.set)
        self.body = ttk.Frame(self.canvas)
        self._window = self.canvas.create_window(0, 0, window=self.body, anchor="nw")
        self.canvas.grid(row=0, column=0, sticky="nsew")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self.body.bind("<Configure>", self._body_changed)
        self.canvas.bind("<Configure>", self._canvas_changed)
        self.bind_all_wheel()
        try:
            background = ttk.Style(self).lookup("TFrame", "background") or None
            if background:
                self.canvas.configure(background=background)
        except tk.TclError:
            pass

    @property
    def scrolls(self) -> bool:
        """True when the content is taller than the frame (the scrollbar is shown)."""
        return bool(self.scrollbar.winfo_manager())

    def _body_changed(self, _event=None) -> None:
        width, height = self.body.winfo_reqwidth(), self.body.winfo_reqheight()
        self.canvas.configure(scrollregion=(0, 0, width, height), width=width)
        self._update_bar()

    def _canvas_changed(self, event) -> None:
        self.canvas.itemconfigure(self._window, width=event.width)
        self._update_bar()

    def _update_bar(self) -> None:
        needed = self.body.winfo_reqheight() > max(1, self.canvas.winfo_height())
        if needed and not self.scrolls:
            self.scrollbar.grid(row=0, column=1, sticky="ns")
        elif not needed and self.scrolls:
            self.scrollbar.grid_remove()
            self.canvas.yview_moveto(0)

    def bind_all_wheel(self) -> None:
        for widget in (self.canvas, self.body):
            widget.bind("<Enter>", lambda _e: self._wheel(True), add="+")
            widget.bind("<Leave>", self._left, add="+")

    def _left(self, event) -> None:
        """Moving onto a child widget also leaves the body: keep the wheel while inside."""
        try:
            inside = self.winfo_containing(event.x_root, event.y_root)
        except (tk.TclError, KeyError):
            inside = None
        if inside is None or not str(inside).startswith(str(self)):
            self._wheel(False)

    def _wheel(self, on: bool) -> None:
        sequences = ("<MouseWheel>", "<Button-4>", "<Button-5>")
        for sequence in sequences:
            if on:
                self.bind_all(sequence, self._on_wheel)
            else:
                self.unbind_all(sequence)

    def _on_wheel(self, event) -> None:
        if not self.scrolls:
            return
        if getattr(event, "num", 0) == 4 or getattr(event, "delta", 0) > 0:
            self.canvas.yview_scroll(-3, "units")
        else:
            self.canvas.yview_scroll(3, "units")

    def see(self, widget: tk.Misc) -> None:
        """Scroll so that `widget` (inside `body`) is visible."""
        self.update_idletasks()
        top = widget.winfo_rooty() - self.body.winfo_rooty()
        height = max(1, self.body.winfo_reqheight())
        self.canvas.yview_moveto(max(0.0, top - 10) / height)
