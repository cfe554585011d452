"""Open session: the recent sessions with what tells them apart, and a folder picker for others.

A bare folder picker listing timestamps says nothing about which session is which; this list
shows, most recently used first, each session's data folder, model, epochs, decided rounds and
masks (`app.run.session.recent_sessions`). Double-click or Open opens one; "Other folder..."
picks any session folder. Not blocking: `on_open(folder)` runs after the choice; `self.result`
is the folder chosen, or None.
"""

from __future__ import annotations

import time
import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Callable, Dict, Optional, Sequence

from app.run.session import SessionSummary

# widths in pixels: the date, the longest model name and the headings fit whole (the date lost
# its minutes, "mobilenet_v3_small" its tail, "Rounds" its s)
COLUMNS = (
    ("used", "Last used", 150),
    ("data", "Data folder", 280),
    ("model", "Model", 160),
    ("epochs", "Epochs", 76),
    ("rounds", "Rounds", 76),
    ("masks", "Masks", 64),
)


def summary_row(summary: SessionSummary) -> tuple:
    """The list's cells for one session."""
    used = time.strftime("%Y-%m-%d %H:%M", time.localtime(summary.last_used)) if summary.last_used else "?"
    return (
        used,
        summary.train_dir,
        summary.model,
        f"{summary.epochs_done}/{summary.epochs}",
        str(summary.rounds),
        str(summary.masks),
    )


class SessionsDialog(tk.Toplevel):
    """The recent sessions; Open / double-click / Other folder... / Cancel."""

    def __init__(
        self, master: tk.Misc, sessions: Sequence[SessionSummary], browse_from: Path, on_open: Callable[[str], None]
    ) -> None:
        super().__init__(master)
        self.title("Open a session")
        self.transient(master.winfo_toplevel())
        self.result: Optional[str] = None
        self._on_open = on_open
        self.browse_from = browse_from
        body = ttk.Frame(self, padding=10)
        body.pack(fill="both", expand=True)
        text = "Recent sessions, most recently used first." if sessions else f"No sessions in {browse_from} yet."
        ttk.Label(body, text=text).pack(anchor="w")
        table = ttk.Frame(body)
        table.pack(fill="both", expand=True, pady=(6, 0))
        self.tree = ttk.Treeview(table, columns=[c[0] for c in COLUMNS], show="headings", height=min(10, max(3, len(sessions))))
        for key, heading, width in COLUMNS:
            self.tree.heading(key, text=heading)
            self.tree.column(key, width=width, stretch=key == "data", anchor="w")
        scrollbar = ttk.Scrollbar(table, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=scrollbar.set)
        self.tree.pack(side="left", fill="both", expand=True)
        scrollbar.pack(side="left", fill="y")
        self.folders: Dict[str, str] = {}  # tree item -> session folder
        for summary in sessions:
            item = self.tree.insert("", "end", values=summary_row(summary))
            self.folders[item] = summary.folder
        self.folder_label = ttk.Label(body, foreground="#555555")
        self.folder_label.pack(anchor="w", pady=(4, 0))
        buttons = ttk.Frame(body)
        buttons.pack(fill="x", pady=(10, 0))
        self.browse_button = ttk.Button(buttons, text="Other folder...", command=self.browse)
        self.browse_button.pack(side="left")
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.destroy)
        self.cancel_button.pack(side="right")
        self.open_button = ttk.Button(buttons, text="Open", command=self.open_selected, default="active")
        self.open_button.pack(side="right", padx=(0, 6))
        self.tree.bind("<Double-Button-1>", lambda _e: self.open_selected())
        self.tree.bind("<<TreeviewSelect>>", lambda _e: self._selected_changed())
        self.bind("<Return>", lambda _e: self.open_selected())
        self.bind("<Escape>", lambda _e: self.destroy())
        items = self.tree.get_children()
        if items:
            self.tree.selection_set(items[0])
            self.tree.focus(items[0])
        self._selected_changed()
        self.tree.focus_set()

    def _selected_changed(self) -> None:
        selected = self.tree.selection()
        folder = self.folders.get(selected[0]) if selected else None
        self.folder_label.configure(text=f"Session folder: {folder}" if folder else "")
        self.open_button.state(["!disabled"] if folder else ["disabled"])

    def open_selected(self) -> None:
        selected = self.tree.selection()
        if selected and selected[0] in self.folders:
            self._choose(self.folders[selected[0]])

    def browse(self) -> None:
        start = self.browse_from if self.browse_from.is_dir() else Path.home()
        folder = filedialog.askdirectory(parent=self, title="Open a session folder", initialdir=str(start), mustexist=True)
        if folder:
            self._choose(folder)

    def _choose(self, folder: str) -> None:
        self.result = folder
        self.destroy()
        self._on_open(folder)
