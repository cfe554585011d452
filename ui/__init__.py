"""The Tk desktop app: main window, brush window, chooser, and the pure helpers they draw with.

Only this package imports tkinter; the engine (`app/`, `models/`, `loss/`, `datasets/`) never
does. Window classes are imported lazily so `import ui.geometry` stays cheap and display-free.
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
    "BrushWindow": "brush_window",
    "ChooserWindow": "chooser_window",
    "ErrorDialog": "dialogs",
    "EventPump": "event_pump",
    "GalleryWindow": "gallery_window",
    "LogPane": "log_pane",
    "MainWindow": "main_window",
    "MoreEpochsDialog": "dialogs",
    "PlotsPanel": "plots",
    "ProgressPanel": "progress_panel",
    "PropagationPanel": "propagation_panel",
    "ReasonabilityWindow": "reasonability_window",
    "SettingsPanel": "settings_panel",
    "TrustBanner": "trust_banner",
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
