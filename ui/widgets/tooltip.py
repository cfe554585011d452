"""A tooltip: a small note that shows while the pointer rests on a widget.

The main window uses it to say why a button waits (a disabled "Discover..." cannot say so
itself: pressing it does nothing). `text` is read each time the tip shows, so it follows the
app's state; an empty text shows no tip.
"""

from __future__ import annotations

import tkinter as tk
from typing import Callable, Optional

from ui.tk_support.quiet_teardown import quietly

DELAY_MS = 500  # how long the pointer rests before the tip shows
WRAP_PX = 320


class Tooltip:
    """Shows `text()` under `widget` after the pointer rested on it for `DELAY_MS`."""

    def __init__(self, widget: tk.Misc, text: Callable[[], str]) -> None:
        self.widget = widget
        self.text = text
        self.tip: Optional[tk.Toplevel] = None
        self._after: Optional[str] = None
        widget.bind("<Enter>", lambda _e: self._schedule(), add="+")
        for sequence in ("<Leave>", "<ButtonPress>", "<Destroy>"):
            widget.bind(sequence, lambda _e: self.hide(), add="+")

    def _schedule(self) -> None:
        self.hide()
        self._after = self.widget.after(DELAY_MS, self.show)

    def show(self) -> Optional[tk.Toplevel]:
        """Show the tip now (tests call it); None when there is nothing to say."""
        self._after = None
        text = self.text()
        if not text or not self.widget.winfo_exists():
            return None
        self.tip = tk.Toplevel(self.widget)
        self.tip.wm_overrideredirect(True)
        x = self.widget.winfo_rootx()
        y = self.widget.winfo_rooty() + self.widget.winfo_height() + 4
        self.tip.wm_geometry(f"+{x}+{y}")
        tk.Label(
            self.tip, text=text, justify="left", wraplength=WRAP_PX, background="#ffffe0", relief="solid", borderwidth=1,
            padx=4, pady=2,
        ).pack()  # fmt: skip
        return self.tip

    def hide(self) -> None:
        if self._after is not None:
            quietly(self.widget.after_cancel, self._after)
            self._after = None
        if self.tip is not None:
            quietly(self.tip.destroy)
            self.tip = None
