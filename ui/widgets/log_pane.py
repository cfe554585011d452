"""A read-only, scrolling log of what the engine and the app did, plus a logging bridge.

`LogPane.append(text, level)` adds a line (warnings in orange, errors in red) and keeps at most
`max_lines`. `QueueLogHandler` forwards records logged in any thread (the trainer warns about
skipped images, for example) onto the app's event queue as `LogLine` messages, so the pane is
only ever written by the Tk thread.
"""

from __future__ import annotations

import logging
import queue
import re
import time
import tkinter as tk
from dataclasses import dataclass
from tkinter import ttk
from typing import Any, List

_STAMP = re.compile(r"^\d\d:\d\d:\d\d  ")
LEVEL_COLOURS = {"info": "", "warning": "#b35900", "error": "#c00000", "debug": "#777777"}


@dataclass(frozen=True)
class LogLine:
    """A line for the log pane, put on the event queue by `QueueLogHandler`."""

    text: str
    level: str = "info"  # info | warning | error | debug


class QueueLogHandler(logging.Handler):
    """A `logging.Handler` that puts a `LogLine` on `target` (thread-safe, never touches Tk)."""

    def __init__(self, target: "queue.Queue[Any]", level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno >= logging.ERROR:
                level = "error"
            elif record.levelno >= logging.WARNING:
                level = "warning"
            else:
                level = "info"
            # the message only: tracebacks reach the pane through TrainingFailed.details
            self.target.put(LogLine(f"{record.name}: {record.getMessage()}", level))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


class LogPane(ttk.Frame):
    """A scrolled, read-only text widget with timestamped lines."""

    def __init__(self, master: tk.Misc, *, max_lines: int = 2000, height: int = 8) -> None:
        super().__init__(master)
        self.max_lines = max_lines
        self.text = tk.Text(
            self, height=height, wrap="word", state="disabled", borderwidth=1, relief="sunken", font="TkFixedFont"
        )
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.text.yview)
        self.text.configure(yscrollcommand=scroll.set)
        self.text.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        for level, colour in LEVEL_COLOURS.items():
            if colour:
                self.text.tag_configure(level, foreground=colour)

    def append(self, text: str, level: str = "info") -> None:
        """Add `text` (may span lines) at the end and scroll to it if the view was at the end."""
        at_end = self.text.yview()[1] >= 0.999
        stamp = time.strftime("%H:%M:%S")
        self.text.configure(state="normal")
        self.text.insert("end", f"{stamp}  {text.rstrip()}\n", (level,))
        excess = int(self.text.index("end-1c").split(".")[0]) - 1 - self.max_lines
        if excess > 0:
            self.text.delete("1.0", f"{excess + 1}.0")
        self.text.configure(state="disabled")
        if at_end:
            self.text.see("end")

    def lines(self) -> List[str]:
        """The lines shown, without timestamps (for tests and copy-paste)."""
        content = self.text.get("1.0", "end-1c")
        return [_STAMP.sub("", line, count=1) for line in content.splitlines()]

    def clear(self) -> None:
        self.text.configure(state="normal")
        self.text.delete("1.0", "end")
        self.text.configure(state="disabled")
