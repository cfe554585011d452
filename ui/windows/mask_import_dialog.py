"""Bring masks from other tools into the open session: the dialog behind "Import masks..." on
the main window's Session box (the button and "Report..." are `ui.windows.session_buttons`).

The dialog reads a source (a folder of binary masks, a COCO JSON file or a Label Studio export:
`datasets.mask_formats`), shows which labels it has with a red / green / ignore choice each,
then "Check" reads and checks everything in a background thread and previews a few images with
what would be painted on them, says what did not match and how many hand-painted masks are in
the way (kept, overwritten or merged: the user's choice, kept by default). "Import" writes. The
worker threads never touch a widget: they put results on a queue the dialog drains every 40 ms.
"""

from __future__ import annotations

import queue
import threading
import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageTk

from datasets.mask_formats import (
    DataImages,
    ImportPlan,
    apply_import,
    detect_format,
    existing_hand_painted,
    read_binary_folder,
    read_coco,
    read_label_studio,
)
from datasets.mask_formats.coco import load_json
from datasets.masks import GREEN, RED, resize_mask
from ui.helpers.overlay import mask_overlay

POLL_MS = 40
PREVIEW_COUNT = 6
PREVIEW_SIDE = 112
CHOICES = ("ignore", "red", "green")
EXISTING_CHOICES = (("keep them", "skip"), ("paint where unmarked", "merge"), ("overwrite them", "overwrite"))


# ---------------------------------------------------------------------------------- pure parts
def labels_in(source: str, fmt: str) -> Dict[str, int]:
    """{label: annotations} of a COCO file's categories or a Label Studio export's labels."""
    data = load_json(source, "file")
    counts: Dict[str, int] = {}
    if fmt == "coco" and isinstance(data, dict):
        names = {c.get("id"): str(c.get("name")) for c in data.get("categories") or [] if isinstance(c, dict)}
        counts = {name: 0 for name in names.values()}
        for annotation in data.get("annotations") or []:
            if isinstance(annotation, dict) and annotation.get("category_id") in names:
                counts[names[annotation["category_id"]]] += 1
    elif isinstance(data, list):
        for task in data:
            for annotation in (task.get("annotations") or []) if isinstance(task, dict) else []:
                for result in annotation.get("result") or [] if isinstance(annotation, dict) else []:
                    value = result.get("value") if isinstance(result, dict) else None
                    for key in ("brushlabels", "polygonlabels"):
                        for label in (value or {}).get(key) or []:
                            counts[str(label)] = counts.get(str(label), 0) + 1
    return counts


def preview_composites(
    plan: ImportPlan, images: DataImages, limit: int = PREVIEW_COUNT, side: int = PREVIEW_SIDE
) -> List[Tuple[str, np.ndarray]]:
    """(relpath, H x W x 3 uint8 thumbnail with the imported red and green painted over it) of
    the first `limit` images of the plan; long side `side` (small images grown, pixels kept sharp)."""
    out = []
    for item in plan.masks[:limit]:
        with Image.open(images.root / item.relpath) as image:
            picture = image.convert("RGB")
            scale = side / max(picture.size)
            size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
            grow = scale > 1
            picture = picture.resize(size, Image.Resampling.NEAREST if grow else Image.Resampling.LANCZOS)
            pixels = np.asarray(picture)
        mask = resize_mask(item.mask(), pixels.shape[:2])
        out.append((item.relpath, mask_overlay(pixels, mask, alpha=0.55)))
    return out


def plan_text(plan: ImportPlan, in_the_way: List[str]) -> str:
    """What the check found, in a few lines."""
    lines = [f"{len(plan.masks)} images get a mask from {Path(plan.source).name}."]
    if plan.unmatched:
        shown = ", ".join(plan.unmatched[:4]) + (" ..." if len(plan.unmatched) > 4 else "")
        lines.append(f"{len(plan.unmatched)} names match no image of the training folder (skipped): {shown}")
    if plan.ambiguous:
        lines.append(f"{len(plan.ambiguous)} names fit several images (skipped): {plan.ambiguous[0]} ...")
    if plan.ignored_labels:
        lines.append("Not imported: " + ", ".join(f"{k} ({v})" for k, v in sorted(plan.ignored_labels.items())))
    if plan.overlap_pixels:
        lines.append(f"{plan.overlap_pixels} pixels are both red and green: red is kept.")
    if in_the_way:
        lines.append(f"{len(in_the_way)} of them already have a hand-painted mask (see below).")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- dialog
class MaskImportDialog(tk.Toplevel):
    """Import masks into `masks` (a MaskStore) for the images of `data_root`; `self.result`
    becomes the ImportOutcome when masks were written, else stays None."""

    def __init__(self, master: tk.Misc, data_root: str, masks: Any, on_done: Optional[Callable[[Any], None]] = None):
        super().__init__(master)
        self.title("Import masks")
        self.transient(master.winfo_toplevel())
        self.data_root = data_root
        self.masks = masks
        self.on_done = on_done
        self.result: Any = None
        self.plan: Optional[ImportPlan] = None
        self.images: Optional[DataImages] = None
        self._results: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
        self._photos: List[ImageTk.PhotoImage] = []
        self._poll_id: Optional[str] = None
        self.label_choices: Dict[str, tk.StringVar] = {}
        self.format: Optional[str] = None  # of the source: "binary", "coco" or "label-studio"

        body = ttk.Frame(self, padding=10)
        body.pack(fill="both", expand=True)
        source_row = ttk.Frame(body)
        source_row.pack(fill="x")
        ttk.Label(source_row, text="From:").pack(side="left")
        self.source_var = tk.StringVar(self)
        self.source_entry = ttk.Entry(source_row, textvariable=self.source_var, width=48)
        self.source_entry.pack(side="left", fill="x", expand=True, padx=4)
        self.folder_button = ttk.Button(source_row, text="Folder...", command=self.on_pick_folder)
        self.folder_button.pack(side="left")
        self.file_button = ttk.Button(source_row, text="JSON file...", command=self.on_pick_file)
        self.file_button.pack(side="left", padx=(4, 0))
        self.format_var = tk.StringVar(self, value="A folder of binary masks, a COCO JSON file or a Label Studio JSON export.")
        ttk.Label(body, textvariable=self.format_var, foreground="#555").pack(anchor="w", pady=(4, 4))

        self.mapping = ttk.LabelFrame(body, text="What becomes red (the model must not look) and green (it should)", padding=6)
        self.mapping.pack(fill="x")
        self.binary_colour = tk.StringVar(self, value="green")

        self.check_button = ttk.Button(body, text="Check", command=self.on_check)
        self.check_button.pack(anchor="w", pady=6)
        self.summary_var = tk.StringVar(self, value="")
        ttk.Label(body, textvariable=self.summary_var, justify="left", wraplength=560).pack(anchor="w")
        self.preview = ttk.Frame(body)
        self.preview.pack(fill="x", pady=4)

        existing = ttk.Frame(body)
        existing.pack(fill="x", pady=(4, 0))
        ttk.Label(existing, text="Hand-painted masks already there:").pack(side="left")
        self.existing_var = tk.StringVar(self, value="skip")
        for text, value in EXISTING_CHOICES:
            ttk.Radiobutton(existing, text=text, value=value, variable=self.existing_var).pack(side="left", padx=4)

        bottom = ttk.Frame(body)
        bottom.pack(fill="x", pady=(8, 0))
        self.progress = ttk.Progressbar(bottom, mode="determinate", length=220)
        self.progress.pack(side="left")
        self.close_button = ttk.Button(bottom, text="Close", command=self.close)
        self.close_button.pack(side="right")
        self.import_button = ttk.Button(bottom, text="Import", command=self.on_import)
        self.import_button.pack(side="right", padx=6)
        self.import_button.state(["disabled"])
        self.protocol("WM_DELETE_WINDOW", self.close)
        self.bind("<Escape>", lambda _e: self.close())
        self._poll_id = self.after(POLL_MS, self._poll)

    # -- source and labels
    def on_pick_folder(self) -> None:
        folder = filedialog.askdirectory(parent=self, title="A folder of binary masks", mustexist=True)
        if folder:
            self.set_source(folder)

    def on_pick_file(self) -> None:
        path = filedialog.askopenfilename(
            parent=self, title="COCO or Label Studio JSON", filetypes=[("JSON", "*.json"), ("all", "*")]
        )
        if path:
            self.set_source(path)

    def set_source(self, source: str) -> None:
        """Show the source's format and its labels with a colour choice each."""
        self.source_var.set(source)
        self.plan = None
        self.import_button.state(["disabled"])
        for child in self.mapping.winfo_children():
            child.destroy()
        self.label_choices = {}
        try:
            fmt = detect_format(source)
            labels = labels_in(source, fmt) if fmt != "binary" else {}
        except ValueError as error:
            self.format_var.set(str(error))
            return
        self.format = fmt
        names = {"binary": "a folder of binary masks", "coco": "COCO JSON", "label-studio": "Label Studio JSON export"}
        self.format_var.set(f"{names[fmt]}")
        if fmt == "binary":
            ttk.Label(self.mapping, text="White in the masks is:").grid(row=0, column=0, sticky="w")
            for column, (text, value) in enumerate((("green (the object)", "green"), ("red (a shortcut)", "red")), 1):
                ttk.Radiobutton(self.mapping, text=text, value=value, variable=self.binary_colour).grid(
                    row=0, column=column, padx=4
                )
            return
        for row, (label, count) in enumerate(sorted(labels.items())):
            ttk.Label(self.mapping, text=f"{label} ({count})").grid(row=row // 2, column=2 * (row % 2), sticky="w", padx=(0, 4))
            variable = tk.StringVar(self, value=label if label in ("red", "green") else "ignore")  # this app's export
            ttk.Combobox(self.mapping, textvariable=variable, values=CHOICES, state="readonly", width=7).grid(
                row=row // 2, column=2 * (row % 2) + 1, padx=(0, 16), pady=1
            )
            self.label_choices[label] = variable

    def chosen(self, colour: str) -> List[str]:
        return [label for label, variable in self.label_choices.items() if variable.get() == colour]

    # -- check (read everything, write nothing) and import
    def on_check(self) -> None:
        source = self.source_var.get().strip()
        if not source:
            return
        if not self.label_choices and self.format != "binary":
            self.set_source(source)
        fmt = self.format
        red, green, colour = self.chosen("red"), self.chosen("green"), RED if self.binary_colour.get() == "red" else GREEN
        self.summary_var.set("Reading and checking...")
        self._busy(True)

        def work() -> None:
            try:
                images = DataImages.scan(self.data_root)
                if fmt == "binary":
                    plan = read_binary_folder(source, images, colour, skip_unmatched=True, progress=self._progress)
                else:
                    reader = read_coco if fmt == "coco" else read_label_studio
                    plan = reader(source, images, red, green, skip_unmatched=True, progress=self._progress)
                self._results.put(
                    ("checked", (images, plan, existing_hand_painted(plan, self.masks), preview_composites(plan, images)))
                )
            except ValueError as error:  # DatasetError and the like: a message for the person
                self._results.put(("error", str(error)))

        threading.Thread(target=work, name="mask-import-check", daemon=True).start()

    def on_import(self) -> None:
        if self.plan is None:
            return
        plan, on_existing = self.plan, self.existing_var.get()
        self._busy(True)
        self.summary_var.set(f"Writing {len(plan.masks)} masks...")

        def work() -> None:
            try:
                self._results.put(("imported", apply_import(plan, self.masks, on_existing, progress=self._progress)))
            except (ValueError, OSError) as error:
                self._results.put(("error", str(error)))

        threading.Thread(target=work, name="mask-import-write", daemon=True).start()

    def _progress(self, done: int, total: int) -> None:  # worker thread: only the queue
        self._results.put(("progress", (done, total)))

    def _busy(self, busy: bool) -> None:
        for button in (self.check_button, self.import_button, self.folder_button, self.file_button):
            button.state(["disabled"] if busy else ["!disabled"])
        if not busy and self.plan is None:
            self.import_button.state(["disabled"])

    def _poll(self) -> None:
        try:
            for _ in range(50):
                kind, value = self._results.get_nowait()
                self._handle(kind, value)
        except queue.Empty:
            pass
        self._poll_id = self.after(POLL_MS, self._poll)

    def _handle(self, kind: str, value: Any) -> None:
        if kind == "progress":
            done, total = value
            self.progress.configure(maximum=max(total, 1), value=done)
        elif kind == "error":
            self.plan = None
            self.summary_var.set(value)
            self._busy(False)
        elif kind == "checked":
            self.images, self.plan, in_the_way, previews = value
            self.summary_var.set(plan_text(self.plan, in_the_way))
            self._show_previews(previews)
            self._busy(False)
        elif kind == "imported":
            self.result = value
            kept = f", {len(value.kept)} hand-painted kept" if value.kept else ""
            self.summary_var.set(f"Imported: {len(value.written)} masks written{kept}.")
            self.plan = None
            self._busy(False)
            if self.on_done is not None:
                self.on_done(value)

    def _show_previews(self, previews: List[Tuple[str, np.ndarray]]) -> None:
        for child in self.preview.winfo_children():
            child.destroy()
        self._photos = []
        for column, (relpath, pixels) in enumerate(previews):
            photo = ImageTk.PhotoImage(Image.fromarray(pixels), master=self)
            self._photos.append(photo)
            cell = ttk.Frame(self.preview)
            cell.grid(row=0, column=column, padx=3)
            ttk.Label(cell, image=photo).pack()
            ttk.Label(cell, text=Path(relpath).name, font=("TkDefaultFont", 8)).pack()

    def close(self) -> None:
        if self._poll_id is not None:
            self.after_cancel(self._poll_id)
            self._poll_id = None
        self.destroy()
