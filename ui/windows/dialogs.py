"""Small dialogs: an error dialog whose technical details are folded away, and the question
"this session's epochs are used up: how many more?".

`ErrorDialog` is not modal in the blocking sense (it does not run a nested event loop), so the
event pump keeps delivering engine messages while it is open and tests can drive it.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable, Optional


class ErrorDialog(tk.Toplevel):
    """A message a person can act on, and an optional "Details" section (e.g. a traceback).

    `user_error=True` (a mistake in the input, such as a wrong folder) says "Please check your
    settings"; otherwise the text says it is likely a bug and where the details are.
    `self.result` becomes "ok" when closed.
    """

    def __init__(
        self, master: tk.Misc, message: str, *, details: str = "", title: str = "Error", user_error: bool = False
    ) -> None:
        super().__init__(master)
        self.title(title)
        self.transient(master.winfo_toplevel())
        self.result: Optional[str] = None
        self.resizable(True, True)

        body = ttk.Frame(self, padding=12)
        body.pack(fill="both", expand=True)
        icon = ttk.Label(body, text="\u26a0", font=("TkDefaultFont", 24), foreground="#c00000")
        icon.grid(row=0, column=0, rowspan=2, sticky="n", padx=(0, 12))
        self.message_label = ttk.Label(body, text=message, wraplength=460, justify="left", font=("TkDefaultFont", 11, "bold"))
        self.message_label.grid(row=0, column=1, sticky="w")
        if user_error:
            hint = "Please check the settings or the files and try again."
        else:
            hint = "This looks like a bug in the program. The details below (also in the log pane) help to report it."
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


class MoreEpochsDialog(tk.Toplevel):
    """ "All N epochs of this session are done": add more (a spinbox) or cancel.

    Not blocking; `on_accept(more)` runs after "Train N more" with the number chosen,
    `on_cancel()` after Cancel or closing. `self.result` is the number, or None.
    """

    def __init__(
        self, master: tk.Misc, done: int, suggested: int, on_accept: Callable[[int], None], on_cancel: Callable[[], None]
    ) -> None:
        super().__init__(master)
        self.title("The session's epochs are used up")
        self.transient(master.winfo_toplevel())
        self.result: Optional[int] = None
        self.done = done
        self._on_accept, self._on_cancel = on_accept, on_cancel
        body = ttk.Frame(self, padding=12)
        body.pack(fill="both", expand=True)
        self.message_label = ttk.Label(
            body,
            wraplength=420,
            justify="left",
            text=f"This session has trained all {done} of its epoch{'s' if done != 1 else ''}. "
            "Add more to keep training it (its model, masks and curves continue), or "
            "press New session in the main window to start over.",
        )
        self.message_label.grid(row=0, column=0, columnspan=3, sticky="w")
        ttk.Label(body, text="More epochs:").grid(row=1, column=0, sticky="w", pady=(10, 0))
        self.more_var = tk.StringVar(self, value=str(suggested))
        self.more_spin = ttk.Spinbox(body, from_=1, to=10000, width=6, textvariable=self.more_var)
        self.more_spin.grid(row=1, column=1, sticky="w", pady=(10, 0), padx=(6, 0))
        buttons = ttk.Frame(body)
        buttons.grid(row=2, column=0, columnspan=3, sticky="e", pady=(12, 0))
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.cancel)
        self.accept_button = ttk.Button(buttons, text="Train more", command=self.accept, default="active")
        self.cancel_button.pack(side="right")
        self.accept_button.pack(side="right", padx=(0, 6))
        self.bind("<Return>", lambda _e: self.accept())
        self.bind("<Escape>", lambda _e: self.cancel())
        self.protocol("WM_DELETE_WINDOW", self.cancel)
        self.more_spin.focus_set()

    def accept(self) -> None:
        try:
            more = int(self.more_var.get())
        except ValueError:
            more = 0
        if more < 1:
            self.bell()
            return
        self.result = more
        self.destroy()
        self._on_accept(more)

    def cancel(self) -> None:
        self.destroy()
        self._on_cancel()


class ConfirmDialog(tk.Toplevel):
    """A question with two answers (Commit a WORSE candidate? Stop while painting?), not blocking.

    `on_yes()` runs after the yes button, `on_no()` (may be None) after the no button, Escape or
    closing. `self.result` is True, False, or None while open. The buttons are attributes
    (`yes_button`, `no_button`), so a test presses them as a user would.
    """

    def __init__(
        self,
        master: tk.Misc,
        title: str,
        message: str,
        yes_text: str,
        no_text: str,
        on_yes: Callable[[], None],
        on_no: Optional[Callable[[], None]] = None,
    ) -> None:
        super().__init__(master)
        self.title(title)
        self.transient(master.winfo_toplevel())
        self.result: Optional[bool] = None
        self._on_yes, self._on_no = on_yes, on_no
        body = ttk.Frame(self, padding=12)
        body.pack(fill="both", expand=True)
        self.message_label = ttk.Label(body, text=message, wraplength=440, justify="left")
        self.message_label.pack(anchor="w")
        buttons = ttk.Frame(body)
        buttons.pack(anchor="e", pady=(12, 0))
        self.no_button = ttk.Button(buttons, text=no_text, command=self.no, default="active")
        self.yes_button = ttk.Button(buttons, text=yes_text, command=self.yes)
        self.no_button.pack(side="right")
        self.yes_button.pack(side="right", padx=(0, 6))
        self.bind("<Escape>", lambda _e: self.no())
        self.protocol("WM_DELETE_WINDOW", self.no)
        self.no_button.focus_set()

    def yes(self) -> None:
        self.result = True
        self.destroy()
        self._on_yes()

    def no(self) -> None:
        self.result = False
        self.destroy()
        if self._on_no is not None:
            self._on_no()
