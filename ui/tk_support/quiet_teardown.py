"""Closing Tk things that may already be gone, in one place.

Teardown runs while windows close in any order (the user, the window manager, the trainer's
end): a widget destroyed a moment earlier raises TclError on the next call. That error means
"already done", so these helpers swallow it instead of every caller repeating try/except.
"""

from __future__ import annotations

import tkinter as tk
from typing import Any, Callable


def quietly(action: Callable[..., Any], *args: Any) -> bool:
    """Call `action(*args)`; False when Tk says its widget is already gone."""
    try:
        action(*args)
    except tk.TclError:
        return False
    return True


def exists(widget: Any) -> bool:
    """Is `widget` (possibly None) still on screen?"""
    if widget is None:
        return False
    try:
        return bool(widget.winfo_exists())
    except tk.TclError:
        return False


def destroy(*widgets: Any) -> None:
    """Destroy each widget that is not None, ignoring those already gone."""
    for widget in widgets:
        if widget is not None:
            quietly(widget.destroy)
