"""The windows the main window opens around feedback rounds: the brush window, the chooser,
the gallery, and the reasonability window; which are open, opening them, closing them.

`RoundWindows` only builds and closes windows: what their buttons send to the trainer is
decided by the caller (`MainWindow`, with `ui.main_window.run_controller`), which passes the callbacks in.
A round's windows close together when the run stops, ends or fails (`close_round`); the
reasonability window outlives rounds and closes with the app (`close_all`).
"""

from __future__ import annotations

import tkinter as tk
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Tuple

from app.run import messages as msg
from ui.tk_support.quiet_teardown import destroy, exists, quietly
from ui.windows.chooser_window import ChooserWindow


class RoundWindows:
    """The open round windows of one main window (None where closed)."""

    def __init__(self, root: tk.Misc, geometry_store: Any = None) -> None:
        self.root = root
        self.geometry_store = geometry_store  # ui.helpers.window_geometry.GeometryStore, or None
        self.brush: Any = None  # ui.brush.window.BrushWindow
        self.chooser: Optional[ChooserWindow] = None
        self.gallery: Any = None  # ui.windows.gallery_window.GalleryWindow
        self.reasonability: Any = None  # ui.windows.reasonability_window.ReasonabilityWindow

    # -------------------------------------------------------------------- brush and chooser
    def brush_is_open(self) -> bool:
        return exists(self.brush)

    def propagation_panel(self) -> Any:
        """The brush window's "Apply to..." panel while it is on screen, else None."""
        panel = getattr(self.brush, "propagation", None)
        return panel if exists(panel) else None

    def open_brush(self, event: msg.FeedbackNeeded, masks: Any, **options: Any) -> Any:
        """The brush window on a round's images; `options`: BrushWindow's callbacks and notes."""
        from ui.brush.window import BrushWindow  # imported late: it is a sibling's module

        self.brush = BrushWindow(
            self.root, event.items, masks, round_number=event.round, geometry_store=self.geometry_store, **options
        )
        return self.brush

    def open_chooser(
        self, event: msg.FinetuneDone, on_commit: Callable[[], None], on_reject: Callable[[], None]
    ) -> ChooserWindow:
        self.chooser = ChooserWindow(self.root, event, on_commit, on_reject, geometry_store=self.geometry_store)
        return self.chooser

    # -------------------------------------------------------------------- gallery
    def open_gallery(
        self,
        entries: Sequence[msg.GalleryEntry],
        train_dir: str,
        *,
        cells: Mapping[str, Iterable[str]],
        masked: Callable[[], Iterable[str]],
        on_paint: Callable[[Sequence[str]], Any],
        n_train: int = 0,
        replace: bool = False,
        unreadable: Sequence[Tuple[str, str]] = (),
    ) -> Any:
        """A gallery of `entries`; `replace` closes the one open first (a newer listing)."""
        from ui.windows.gallery_window import GalleryWindow

        if replace and exists(self.gallery):
            quietly(self.gallery.destroy)
        self.gallery = GalleryWindow(
            self.root,
            entries,
            train_dir,
            cells=cells,
            masked=masked,
            on_paint=on_paint,
            n_train=n_train,
            store=self.geometry_store,
            unreadable=unreadable,
        )
        return self.gallery

    # -------------------------------------------------------------------- reasonability
    def show_reasonability(self, event: msg.ReasonabilityReady, on_paint: Callable[[Sequence[str]], Any]) -> Any:
        """Open the reasonability window on `event`, or raise and refresh the open one."""
        from ui.windows.reasonability_window import ReasonabilityWindow

        window = self.reasonability
        if exists(window):
            window.show(event)
            window.deiconify()
            window.lift()
            return window
        self.reasonability = ReasonabilityWindow(self.root, event, on_paint=on_paint, geometry_store=self.geometry_store)
        return self.reasonability

    def refresh_reasonability(self, event: msg.ReasonabilityReady) -> None:
        """A newer matrix: the open reasonability window shows it."""
        if self.reasonability is not None and not quietly(self._show_if_open, self.reasonability, event):
            self.reasonability = None

    @staticmethod
    def _show_if_open(window: Any, event: msg.ReasonabilityReady) -> None:
        if window.winfo_exists():
            window.show(event)

    # -------------------------------------------------------------------- closing
    def close_round(self) -> None:
        """Close the gallery, the brush window (saving its paint) and the chooser (deciding
        nothing: a stopped trainer keeps the weights it had before the round)."""
        brush, chooser, gallery = self.brush, self.chooser, self.gallery
        self.brush = self.chooser = self.gallery = None
        destroy(gallery)
        if brush is not None:
            if hasattr(brush, "cancel"):
                quietly(brush.cancel)  # saves the mask on screen; its command goes nowhere
            if exists(brush):
                quietly(brush.destroy)
        destroy(chooser)

    def close_all(self) -> None:
        """The round's windows and the reasonability window (the app is closing)."""
        self.close_round()
        window, self.reasonability = self.reasonability, None
        destroy(window)
