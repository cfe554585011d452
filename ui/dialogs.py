"""Small dialogs: an error dialog whose technical details are folded away.

`ErrorDialog` is not modal in the blocking sense (it does not run a nested event loop), so the
event pump keeps delivering engine messages while it is open and tests can drive it.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Optional


class ErrorDialog(tk.Toplevel):
    """A message a person can act on, and an optional "Details" section (e.g. a traceback).

    `user_error=True` (a mistake in the input, such as a wrong folder) says "Please check your
    settings"; otherwise the text says it is likely a bug and where the details are.
    `self.result` becomes "ok" when closed.
    """

    def __init__(self, master: tk.Misc, message: str, *, details: str = "",
                 title: str = "Error", user_error: bool = False) -> None:
        super().__init__(master)
        self.title(title)
        self.transient(master.winfo_toplevel())
        self.result: Optional[str] = None
        self.resizable(True, True)

        body = ttk.Frame(self, padding=12)
        body.pack(fill="both", expand=True)
        icon = ttk.Label(body, text="\u26a0", font=("TkDefaultFont", 24), foreground="#c00000")
        icon.grid(row=0, column=0, rowspan=2, sticky="n", padx=(0, 12))
        self.message_label = ttk.Label(body, text=message, wraplength=460, justify="left",
                                       font=("TkDefaultFont", 11, "bold"))
        self.message_label.grid(row=0, column=1, sticky="w")
        if user_error:
            hint = "Please check the settings or the files and try again."
        else:
            hint = ("This looks like a bug in the program. The details below (also in the log "
                    "pane) help to report it.")
        self.hint_label = ttk.Label(body, text=hint, wraplength=460, justify="left")
        self.hint_label.grid(row=1, column=1, sticky="w", pady=(6, 0))

        self.details_text: Optional[tk.Text] = None
        self.details_button: Optional[ttk.Button] = None
        if details:
            self.details_button = ttk.Button(body, text="Show details", command=self.toggle_details)
            self.details_button.grid(row=2, column=1, sticky="w", pady=(8, 0))
            self.details_text = tk.Text(body, height=12, width=80, wrap="none", font="TkFixedFont")
            self.details_text.insert("1.0", details)
            self.details_text.configure(state="disabled")

        self.ok_button = ttk.Button(body, text="OK", command=self.close, default="active")
        self.ok_button.grid(row=4, column=1, sticky="e", pady=(12, 0))
        body.columnconfigure(1, weight=1)
        body.rowconfigure(3, weight=1)
        self.bind("<Return>", lambda _e: self.close())
        self.bind("<Escape>", lambda _e: self.close())
        self.protocol("WM_DELETE_WINDOW", self.close)
        self.ok_button.focus_set()
        self._place_over(master.winfo_toplevel())

    def _place_over(self, parent: tk.Misc) -> None:
        """Centre on the parent window (window managers may still move it)."""
        self.update_idletasks()
        x = parent.winfo_rootx() + max(0, (parent.winfo_width() - self.winfo_reqwidth()) // 2)
        y = parent.winfo_rooty() + max(0, (parent.winfo_height() - self.winfo_reqheight()) // 3)
        self.geometry(f"+{x}+{y}")

    @property
    def details_shown(self) -> bool:
        return self.details_text is not None and bool(self.details_text.grid_info())

    def toggle_details(self) -> None:
        if self.details_text is None or self.details_button is None:
            return
        if self.details_text.grid_info():
            self.details_text.grid_remove()
            self.details_button.configure(text="Show details")
        else:
            self.details_text.grid(row=3, column=0, columnspan=2, sticky="nsew", pady=(8, 0))
            self.details_button.configure(text="Hide details")

    def close(self) -> None:
        self.result = "ok"
        self.destroy()
