"""The settings form of the main window: data folders, model, losses, schedule of feedback rounds.

Defaults let a newcomer press Train straight away: the built-in demo data (data folder left
blank), small_cnn, 6 epochs, a feedback round every 2 epochs with 6 images, RRR guidance.
`read()` checks every field and, when something is wrong, puts a message next to each bad field
and raises `FormError` (the main window shows a dialog); it never lets a traceback through.
Settings the form does not show (batch size, seed, device, ...) come from `base_config`, which is
`TrainConfig()` or the configuration of an opened session. The rules without widgets (defaults,
choices, hints, the test folder's checks) are `ui.main_window.settings_form`.
"""

from __future__ import annotations

import os
import tkinter as tk
from tkinter import filedialog, ttk
from typing import Dict, Optional, Sequence

from app.engine.config import TrainConfig
from app.errors import UserError
from app.explain.locator_config import LOCATOR_SETTINGS

from .settings_form import (
    DEFAULT_CONFIG,
    FIELD_LABELS,
    NO_GUIDANCE,
    FormError,
    FormValues,
    guidance_choices,
    lambda_hint,
    model_choices,
    saliency_choices,
    selection_choices,
    test_folder_problem,
)

DISABLED_FIELD = "#e6e6e6"  # background of a locked field: it must look locked
DISABLED_TEXT = "#8a8a8a"


def style_disabled_fields(widget: tk.Misc) -> None:
    """Make locked entries, spinboxes and menus grey (clam leaves them white mid-run)."""
    style = ttk.Style(widget)
    for kind in ("TEntry", "TSpinbox", "TCombobox"):
        style.map(
            kind, fieldbackground=[("disabled", DISABLED_FIELD), ("readonly", "white")], foreground=[("disabled", DISABLED_TEXT)]
        )
    style.map("TCheckbutton", foreground=[("disabled", DISABLED_TEXT)])


class SettingsPanel(ttk.LabelFrame):
    """Entries and menus for one run. Tk variables are attributes named after the fields."""

    def __init__(self, master: tk.Misc, *, base_config: TrainConfig = DEFAULT_CONFIG, data_dir: Optional[str] = None) -> None:
        super().__init__(master, text="Settings", padding=8)
        self.base_config = base_config
        self.vars: Dict[str, tk.StringVar] = {}
        self.error_labels: Dict[str, ttk.Label] = {}
        self.inputs: Dict[str, tk.Widget] = {}
        self._filled: Dict[str, str] = {}  # folder fields filled in by show_folders, not typed
        self._row = 0

        self.train_dir_entry = self._path_row("train_dir", "Data folder", "blank: demo digits", data_dir or "")
        self.val_dir_entry = self._path_row("val_dir", "Validation folder", "blank: 20% of the data", "")
        self.test_dir_entry = self._path_row("test_dir", "Test folder", "optional: shortcut-free, only measured", "")
        self.model_box = self._combo_row("model", model_choices(), "")
        self.weights_entry = self._path_row("weights_path", "Weights file", "blank: none (local .pth)", "", file=True)
        self.saliency_box = self._combo_row("saliency_method", saliency_choices(), "heatmap to paint on")
        self.guidance_box = self._combo_row("guidance", guidance_choices(), "penalty on masks")
        self.lam_entry = self._entry_row("lam", "", lambda_hint(DEFAULT_CONFIG.guidance or NO_GUIDANCE))
        self.vars["guidance"].trace_add("write", lambda *_: self._guidance_changed())
        self.counterexamples_check = self._check_row("counterexamples", "swap red regions", "red no longer predicts")
        self.oversample_entry = self._entry_row("oversample_annotated", "", "x as often (1: uniform)")
        self.epochs_spin = self._spin_row("epochs", 1, 10000, "")
        self.feedback_spin = self._spin_row("feedback_every", 0, 10000, "0: never pause")
        self.images_spin = self._spin_row("images_per_round", 1, 200, "")
        self.selection_box = self._combo_row("selection", selection_choices(), "")
        self.lr_entry = self._entry_row("lr", "", "Adam")
        # The content locator's settings (propagation, shortcut-broken validation), from their one home.
        self.locator_entries = {s.config_field: self._entry_row(s.config_field, "", s.hint) for s in LOCATOR_SETTINGS}
        self.config_error = ttk.Label(self, text="", foreground="#c00000", wraplength=440)
        self.config_error.grid(row=self._row, column=0, columnspan=4, sticky="w")
        self.config_error.hint = ""  # type: ignore[attr-defined]
        self.error_labels["config"] = self.config_error
        self.columnconfigure(1, weight=1)
        style_disabled_fields(self)
        self.load(data_dir, None, base_config)

    def _guidance_changed(self) -> None:
        label = self.error_labels.get("lam")
        if label is None:
            return
        label.hint = lambda_hint(self.vars["guidance"].get())  # type: ignore[attr-defined]
        if str(label.cget("foreground")) != "#c00000":
            label.configure(text=label.hint)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ layout helpers
    def _label(self, name: str) -> None:
        ttk.Label(self, text=FIELD_LABELS[name]).grid(row=self._row, column=0, sticky="w", padx=(0, 6), pady=2)

    def _finish_row(self, name: str, hint: str, widget: tk.Widget) -> None:
        self.inputs[name] = widget
        error = ttk.Label(self, text=hint, foreground="#666666", wraplength=170)
        error.grid(row=self._row, column=3, sticky="w", padx=(6, 0))
        error.hint = hint  # type: ignore[attr-defined]
        self.error_labels[name] = error
        self._row += 1

    def _var(self, name: str, value: str = "") -> tk.StringVar:
        var = tk.StringVar(self, value=value)
        self.vars[name] = var
        return var

    def _path_row(self, name: str, _label: str, hint: str, value: str, file: bool = False) -> ttk.Entry:
        self._label(name)
        entry = ttk.Entry(self, textvariable=self._var(name, value), width=20)
        entry.grid(row=self._row, column=1, sticky="ew", pady=2)
        button = ttk.Button(self, text="\u2026", width=2, command=lambda: self._browse(name, file))
        button.grid(row=self._row, column=2, sticky="w", padx=(4, 0))
        setattr(self, f"{name}_button", button)
        self._finish_row(name, hint, entry)
        return entry

    def _combo_row(self, name: str, values: Sequence[str], hint: str) -> ttk.Combobox:
        self._label(name)
        box = ttk.Combobox(self, textvariable=self._var(name), values=list(values), state="readonly", width=20)
        box.grid(row=self._row, column=1, columnspan=2, sticky="w", pady=2)
        self._finish_row(name, hint, box)
        return box

    def _entry_row(self, name: str, value: str, hint: str) -> ttk.Entry:
        self._label(name)
        entry = ttk.Entry(self, textvariable=self._var(name, value), width=12)
        entry.grid(row=self._row, column=1, columnspan=2, sticky="w", pady=2)
        self._finish_row(name, hint, entry)
        return entry

    def _check_row(self, name: str, text: str, hint: str) -> ttk.Checkbutton:
        self._label(name)
        check = ttk.Checkbutton(self, text=text, variable=self._var(name, "1"), onvalue="1", offvalue="0")
        check.grid(row=self._row, column=1, columnspan=2, sticky="w", pady=2)
        self._finish_row(name, hint, check)
        return check

    def _spin_row(self, name: str, low: int, high: int, hint: str) -> ttk.Spinbox:
        self._label(name)
        spin = ttk.Spinbox(self, textvariable=self._var(name), from_=low, to=high, increment=1, width=8)
        spin.grid(row=self._row, column=1, columnspan=2, sticky="w", pady=2)
        self._finish_row(name, hint, spin)
        return spin

    def _browse(self, name: str, file: bool = False) -> None:
        start = self.vars[name].get() or os.getcwd()
        if file:
            chosen = filedialog.askopenfilename(
                parent=self,
                initialdir=os.path.dirname(start) if os.path.isfile(start) else start,
                title=f"Choose the {FIELD_LABELS[name].lower()}",
                filetypes=[("PyTorch weights", "*.pth *.pt"), ("All files", "*")],
            )
        else:
            chosen = filedialog.askdirectory(parent=self, initialdir=start, title=f"Choose the {FIELD_LABELS[name].lower()}")
        if chosen:
            self.vars[name].set(chosen)

    # ------------------------------------------------------------------ values in / out
    def load(self, train_dir: Optional[str], val_dir: Optional[str], config: TrainConfig, test_dir: Optional[str] = None) -> None:
        """Fill the form from folders and a config (e.g. those of an opened session)."""
        self.base_config = config
        self._filled = {}
        values = {
            "train_dir": train_dir or "",
            "val_dir": val_dir or "",
            "test_dir": test_dir or "",
            "model": config.model,
            "weights_path": config.weights_path or "",
            "saliency_method": config.saliency_method,
            "guidance": config.guidance or NO_GUIDANCE,
            "lam": "" if config.lam is None else f"{config.lam:g}",
            "counterexamples": "1" if config.counterexamples else "0",
            "oversample_annotated": f"{config.oversample_annotated:g}",
            "epochs": str(config.epochs),
            "feedback_every": str(config.feedback_every),
            "images_per_round": str(config.images_per_round),
            "selection": config.selection,
            "lr": f"{config.lr:g}",
            **{s.config_field: f"{getattr(config, s.config_field):g}" for s in LOCATOR_SETTINGS},
        }
        for name, value in values.items():
            self.vars[name].set(value)
        self.clear_errors()

    def show_folders(self, train_dir: Optional[str], val_dir: Optional[str], test_dir: Optional[str]) -> None:
        """Show the folders a run actually uses (the demo's, for a blank data folder), so the
        next Train reads as resuming the same data. Those filled into blank fields are
        remembered: `forget_filled_folders` blanks them again for a new session."""
        for name, value in (("train_dir", train_dir), ("val_dir", val_dir), ("test_dir", test_dir)):
            if value and not self.vars[name].get().strip():
                self._filled[name] = value
            self.vars[name].set(value or "")

    def forget_filled_folders(self) -> None:
        """Blank the folder fields this panel filled in itself (`show_folders`) and the user has
        not changed since: "New session" after a demo run must not carry the demo's validation
        and test folders over to the user's own data."""
        for name, value in self._filled.items():
            if self.vars[name].get() == value:
                self.vars[name].set("")
        self._filled = {}

    def clear_errors(self) -> None:
        for label in self.error_labels.values():
            label.configure(text=label.hint, foreground="#666666")  # type: ignore[attr-defined]

    def show_errors(self, errors: Dict[str, str]) -> None:
        self.clear_errors()
        for name, message in errors.items():
            label = self.error_labels.get(name, self.config_error)
            label.configure(text=message, foreground="#c00000")

    def errors_shown(self) -> Dict[str, str]:
        """Field -> error text currently shown (for tests)."""
        return {
            name: str(label.cget("text"))
            for name, label in self.error_labels.items()
            if str(label.cget("foreground")) == "#c00000"
        }

    def read(self) -> FormValues:
        """The form's values; raises `FormError` (and marks the fields) when any is invalid."""
        errors: Dict[str, str] = {}
        get = lambda name: self.vars[name].get().strip()  # noqa: E731

        def folder(name: str) -> Optional[str]:
            text = get(name)
            if not text:
                return None
            path = os.path.expanduser(text)
            if not os.path.isdir(path):
                errors[name] = "no such folder" if not os.path.exists(path) else "not a folder"
            return path

        def integer(name: str, low: int) -> int:
            text = get(name)
            try:
                value = int(text)
            except ValueError:
                errors[name] = f"enter a whole number (got {text!r})" if text else "required"
                return low
            if value < low:
                errors[name] = f"must be at least {low}"
            return value

        def number(name: str, *, blank_ok: bool, positive: bool) -> Optional[float]:
            text = get(name)
            if not text and blank_ok:
                return None
            try:
                value = float(text)
            except ValueError:
                errors[name] = f"enter a number (got {text!r})" if text else "required"
                return None
            if value != value or value in (float("inf"), float("-inf")):
                errors[name] = "must be a finite number"
            elif positive and value <= 0:
                errors[name] = "must be greater than 0"
            elif value < 0:
                errors[name] = "must be 0 or more"
            return value

        def choice(name: str, allowed: Sequence[str]) -> str:
            value = get(name)
            if value not in allowed:
                errors[name] = f"choose one of: {', '.join(allowed)}"
            return value

        train_dir = folder("train_dir")
        val_dir = folder("val_dir")
        test_dir = folder("test_dir")
        if test_dir and "test_dir" not in errors:
            problem = test_folder_problem(test_dir, train_dir if "train_dir" not in errors else None, val_dir)
            if problem:
                errors["test_dir"] = problem
        model = choice("model", model_choices())
        weights_path = get("weights_path") or None
        if weights_path is not None:
            weights_path = os.path.expanduser(weights_path)
            if not os.path.isfile(weights_path):
                errors["weights_path"] = "no such file" if not os.path.exists(weights_path) else "not a file"
        saliency = choice("saliency_method", saliency_choices())
        guidance = choice("guidance", guidance_choices())
        lam = number("lam", blank_ok=True, positive=False)
        oversample = number("oversample_annotated", blank_ok=False, positive=True)
        if oversample is not None and "oversample_annotated" not in errors and oversample < 1:
            errors["oversample_annotated"] = "must be at least 1"
        epochs = integer("epochs", 1)
        feedback_every = integer("feedback_every", 0)
        images = integer("images_per_round", 1)
        selection = choice("selection", selection_choices())
        lr = number("lr", blank_ok=False, positive=True)
        locator = {s.config_field: number(s.config_field, blank_ok=False, positive=False) for s in LOCATOR_SETTINGS}
        for setting in LOCATOR_SETTINGS:
            if setting.config_field not in errors:
                problem = setting.problem(locator[setting.config_field])
                if problem:
                    errors[setting.config_field] = problem.split(", got")[0]
        if errors:
            self.show_errors(errors)
            raise FormError(errors)
        try:
            config = self.base_config.replace(
                model=model,
                saliency_method=saliency,
                guidance=None if guidance == NO_GUIDANCE else guidance,
                lam=lam,
                epochs=epochs,
                feedback_every=feedback_every,
                images_per_round=images,
                selection=selection,
                lr=lr,
                counterexamples=get("counterexamples") == "1",
                oversample_annotated=oversample,
                weights_path=weights_path,
                **locator,
            )
        except (UserError, ValueError, TypeError) as error:
            errors["config"] = str(error)
            self.show_errors(errors)
            raise FormError(errors) from None
        self.clear_errors()
        return FormValues(train_dir, val_dir, config, test_dir)

    def set_enabled(self, enabled: bool) -> None:
        """Lock the form while a run is going (its settings cannot change mid-run)."""
        for widget in self.inputs.values():
            if isinstance(widget, ttk.Combobox):
                widget.configure(state="readonly" if enabled else "disabled")
            else:
                widget.configure(state="normal" if enabled else "disabled")
        for name in ("train_dir", "val_dir", "test_dir", "weights_path"):
            getattr(self, f"{name}_button").configure(state="normal" if enabled else "disabled")
