"""How tall the main window's plots are on a short screen: what is left once the trust banner,
the progress bars and a few lines of log have their room, within bounds.

The window packs the plots before the progress bars and the log, so the plots keep the height
they ask for and the log gives up its lines first; `PlotsRoom` keeps that request fitting the
column (on `<Configure>` of the column, the banner and the part below the plots), so the log
keeps `LOG_MIN_PX` too. At 1280 x 720 with the banner the plots were ~60 px an axes.
"""

from __future__ import annotations

from tkinter import ttk
from typing import Any

PLOTS_MIN_HEIGHT = 300  # px the plots ask for at most on a short screen (about 110 px an axes)
PLOTS_FLOOR = 160  # never less, whatever the log
LOG_MIN_PX = 45  # about two lines of the log stay visible
BANNER_GAP = 6  # the banner's pady below it


def plots_height(column: int, banner: int, below: int, log: int) -> int:
    """The plots' height request: `column` px tall, the banner `banner` px (0: hidden), the
    part below the plots `below` px of which the log asks `log`."""
    room = column - banner - (below - log) - LOG_MIN_PX
    return max(PLOTS_FLOOR, min(PLOTS_MIN_HEIGHT, room))


class PlotsRoom:
    """Keeps `plots`' height request fitting `column` (see the module's docstring)."""

    def __init__(self, column: ttk.Frame, banner: Any, plots: Any, below: ttk.Frame, log: Any) -> None:
        self.column, self.banner, self.plots, self.below, self.log = column, banner, plots, below, log
        self.height = PLOTS_MIN_HEIGHT
        plots.canvas.get_tk_widget().configure(height=self.height)
        for widget in (column, banner, below):
            widget.bind("<Configure>", lambda _e: self.fit(), add="+")
        banner.bind("<Unmap>", lambda _e: self.fit(), add="+")

    def fit(self) -> None:
        column = self.column.winfo_height()
        if column <= 1:  # not laid out yet
            return
        banner = self.banner.winfo_reqheight() + BANNER_GAP if self.banner.winfo_ismapped() else 0
        height = plots_height(column, banner, self.below.winfo_reqheight(), self.log.winfo_reqheight())
        if height != self.height:
            self.height = height
            self.plots.canvas.get_tk_widget().configure(height=height)
