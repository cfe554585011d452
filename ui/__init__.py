"""The Tk desktop app: main window, brush window, chooser, and the pure helpers they draw with.

Only this package imports tkinter; the engine (`app/`, `models/`, `loss/`, `datasets/`) never
does. Window classes are imported lazily so `import ui.helpers.geometry` stays cheap and display-free.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BrushWindow",
    "ChooserWindow",
    "ErrorDialog",
    "EventPump",
    "GalleryWindow",
    "LogPane",
    "MainWindow",
    "MoreEpochsDialog",
    "PlotsPanel",
    "ProgressPanel",
    "PropagationPanel",
    "ReasonabilityWindow",
    "SettingsPanel",
    "TrustBanner",
    "build_app",
    "open_desktop_app",
    "run_app",
]

_WHERE = {
    "BrushWindow": "brush.window",
    "ChooserWindow": "windows.chooser_window",
    "ErrorDialog": "windows.dialogs",
    "EventPump": "tk_support.event_pump",
    "GalleryWindow": "windows.gallery_window",
    "LogPane": "widgets.log_pane",
    "MainWindow": "main_window.window",
    "MoreEpochsDialog": "windows.dialogs",
    "PlotsPanel": "widgets.plots",
    "ProgressPanel": "widgets.progress_panel",
    "PropagationPanel": "brush.propagation_panel",
    "ReasonabilityWindow": "windows.reasonability_window",
    "SettingsPanel": "main_window.settings_panel",
    "TrustBanner": "main_window.trust_banner",
    "build_app": "desktop",
    "open_desktop_app": "desktop",
    "run_app": "desktop",
}


def __getattr__(name: str) -> Any:
    """`from ui import MainWindow` works without importing every window at package import."""
    if name in _WHERE:
        from importlib import import_module

        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
