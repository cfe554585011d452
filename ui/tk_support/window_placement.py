"""Open a window at its remembered size (clamped to the screen) and remember it on close.

The Tk side of `ui.helpers.window_geometry`: `place(window, name, width, height, store)` sets the
geometry (the remembered one when `store` knows it, else `width x height` fitted to the
screen) and records the window's geometry in `store` when it is destroyed. `store=None`
(tests) only fits to the screen.
"""

from __future__ import annotations

import tkinter as tk
from typing import Optional

from ui.helpers.window_geometry import GeometryStore, fit_geometry


def place(window: tk.Misc, name: str, width: int, height: int, store: Optional[GeometryStore] = None) -> str:
    """Size `window` (a Tk or Toplevel) to fit the screen; returns the geometry applied."""
    screen_w, screen_h = window.winfo_screenwidth(), window.winfo_screenheight()
    geometry = store.load(name, screen_w, screen_h) if store is not None else None
    if geometry is None:
        geometry = fit_geometry(width, height, screen_w, screen_h)
    window.geometry(geometry)
    window.maxsize(screen_w, screen_h)
    if store is not None:
        _remember_on_close(window, name, store)
    return geometry


def _remember_on_close(window: tk.Misc, name: str, store: GeometryStore) -> None:
    """Save the window's geometry under `name` when it is destroyed."""

    def remember(event) -> None:
        if event.widget is window:
            try:
                store.save(name, window.winfo_geometry())
            except tk.TclError:
                pass

    window.bind("<Destroy>", remember, add="+")


def fit_minsize(window: tk.Misc, width: int, height: int) -> None:
    """A minimum size that never exceeds the screen."""
    screen_w, screen_h = window.winfo_screenwidth(), window.winfo_screenheight()
    window.minsize(min(width, screen_w - 16), min(height, screen_h - 64))


def restore_and_remember(window: tk.Misc, name: str, store: Optional[GeometryStore] = None) -> Optional[str]:
    """For windows that size themselves to their content (brush, chooser, reasonability):
    reopen at the size the user left them (clamped to the screen), and remember it on close.
    Returns the geometry restored, or None (the natural size stays, cut to the screen when it
    is larger: a chooser with every row shown wants more than a 1280 x 720 screen's height)."""
    screen_w, screen_h = window.winfo_screenwidth(), window.winfo_screenheight()
    geometry = store.load(name, screen_w, screen_h) if store is not None else None
    if geometry is not None:
        window.geometry(geometry)
    else:
        window.update_idletasks()
        wanted_w, wanted_h = window.winfo_reqwidth(), window.winfo_reqheight()
        fitted = fit_geometry(wanted_w, wanted_h, screen_w, screen_h)
        if fitted != f"{wanted_w}x{wanted_h}":
            window.geometry(fitted)
    if store is not None:
        _remember_on_close(window, name, store)
    return geometry
