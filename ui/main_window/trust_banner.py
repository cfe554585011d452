"""A yellow banner over the plots: "these numbers cannot be trusted", why, and what to try.

Shows the `app.engine.trust_checks.TrustWarning`s of the run (most serious first) and the remedies
they offer as buttons where the app can act: "Use small_cnn" and "Weights file..." set the
form (the change takes a new session: the model changes). The advice is worded for this app
(`UI_REMEDIES`): it has no setting to freeze BatchNorm, so it never tells the user to. While a
run goes on the buttons wait, and a line says why. Hidden while there is nothing to say; "Hide"
hides it until the warnings change.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable, Optional, Sequence

from app.engine.trust_checks import TrustWarning

from .run_controller import UI_REMEDIES

BUSY_NOTE = "Stop the run to use these: the model changes with a new session."
BANNER_BG = "#fff3cd"
BANNER_FG = "#5c4400"


class TrustBanner(tk.Frame):
    """`show(warnings)`; `on_smaller_model()` / `on_weights()` run the remedies' buttons."""

    def __init__(
        self, master: tk.Misc, *, on_smaller_model: Callable[[], None], on_weights: Callable[[], None], place: Callable[[], None]
    ) -> None:
        super().__init__(master, background=BANNER_BG, highlightbackground="#e0b000", highlightthickness=1, padx=8, pady=6)
        self.warnings: tuple = ()
        self._place = place  # packs the banner where it belongs
        self._hidden_for: Optional[tuple] = None
        self.title_label = tk.Label(
            self, background=BANNER_BG, foreground="#8a0000", font=("TkDefaultFont", 11, "bold"), anchor="w", justify="left"
        )
        self.title_label.pack(fill="x")
        self.detail_label = tk.Label(self, background=BANNER_BG, foreground=BANNER_FG, anchor="w", justify="left", wraplength=700)
        self.detail_label.pack(fill="x")
        # On a short screen the reasons stay folded behind "Why?" (the advice shows), so the
        # plots keep their room (at 720 px they collapsed under the banner).
        self.compact = self.winfo_screenheight() < 900
        self.expanded = not self.compact
        buttons = tk.Frame(self, background=BANNER_BG)
        buttons.pack(fill="x", pady=(4, 0))
        self.smaller_button = ttk.Button(buttons, text="Use small_cnn", command=on_smaller_model)
        self.weights_button = ttk.Button(buttons, text="Weights file...", command=on_weights)
        self.hide_button = ttk.Button(buttons, text="Hide", command=self.hide)
        self.smaller_button.pack(side="left")
        self.weights_button.pack(side="left", padx=(6, 0))
        self.hide_button.pack(side="right")
        self.why_button = ttk.Button(buttons, text="Why?", command=self.toggle_details)
        if self.compact:
            self.why_button.pack(side="right", padx=(0, 6))
        self.busy_label = tk.Label(self, background=BANNER_BG, foreground=BANNER_FG, text="", anchor="w", justify="left")
        self.bind("<Configure>", self._wrap)

    def _wrap(self, event: tk.Event) -> None:
        """Every line wraps to the banner's width (the title and the busy note were cut off)."""
        width = max(200, event.width - 24)
        for label in (self.title_label, self.detail_label, self.busy_label):
            label.configure(wraplength=width)

    def toggle_details(self) -> None:
        """Show or fold the reasons behind the warning (the advice always shows)."""
        self.expanded = not self.expanded
        self.why_button.configure(text="Less" if self.expanded else "Why?")
        self._show_text()

    @property
    def shown(self) -> bool:
        return bool(self.winfo_manager())

    def show(self, warnings: Sequence[TrustWarning]) -> None:
        """Show these warnings (hide when none); `place()` packs it when it was hidden."""
        self.warnings = tuple(warnings)
        if not self.warnings:
            self.pack_forget()
            return
        if self._hidden_for == tuple(w.code for w in self.warnings):
            return  # the user hid exactly these
        first = self.warnings[0]
        more = len(self.warnings) - 1
        self.title_label.configure(
            text=f"\u26a0 These numbers may not mean anything: {first.title.lower()}" + (f" (+{more} more)" if more else "")
        )
        remedies = []
        for warning in self.warnings:
            for key in warning.remedies:
                if key not in remedies:
                    remedies.append(key)
        self._show_text()
        for key, button in (("smaller_model", self.smaller_button), ("pretrained", self.weights_button)):
            if key in remedies:
                button.pack(side="left", padx=(0, 6))
            else:
                button.pack_forget()
        if not self.shown:
            self._place()

    def _show_text(self) -> None:
        """The reasons (unless folded) and the advice."""
        lines = [f"\u2022 {w.title}: {w.detail}." for w in self.warnings] if self.expanded else []
        remedies: list = []
        for warning in self.warnings:
            remedies += [key for key in warning.remedies if key not in remedies]
        lines.append("Try: " + "; ".join(UI_REMEDIES[key] for key in remedies) + ".")
        self.detail_label.configure(text="\n".join(lines))

    def text(self) -> str:
        """The banner's words, reasons included even when folded (tests, screenshots)."""
        reasons = "\n".join(f"\u2022 {w.title}: {w.detail}." for w in self.warnings)
        return f"{self.title_label.cget('text')}\n{reasons}\n{self.detail_label.cget('text')}"

    def hide(self) -> None:
        self._hidden_for = tuple(w.code for w in self.warnings)
        self.pack_forget()

    def set_actions_enabled(self, enabled: bool) -> None:
        """The remedies' buttons act only between runs; while one goes on a line says why."""
        for button in (self.smaller_button, self.weights_button):
            button.state(["!disabled"] if enabled else ["disabled"])
        self.busy_label.configure(text="" if enabled else BUSY_NOTE)
        if enabled:
            self.busy_label.pack_forget()
        else:
            self.busy_label.pack(fill="x")
