"""The chooser: old vs new model after a fine-tune round, and the explicit Commit / Reject.

For each annotated image (browse with the arrow keys or the buttons) it shows the image with
the old model's saliency on the left and the new model's on the right, the painted mask as an
outline (or filled, with a toggle), and each model's prediction and confidence. Above, the
round's numbers: validation accuracy and loss, guidance loss, share of saliency on red and on
green, before and after, and which stop criterion ended the round.

Changing the weights must be a deliberate choice: Commit (button, Enter or C) calls
`on_commit`; Reject (button, Escape or R) and closing the window call `on_reject`.
`self.result` is "commit" or "reject" afterwards. Exactly one of the callbacks is called once.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable, List, Optional

import numpy as np
from PIL import Image, ImageTk

from app.engine.finetune_report import STOP_CANCELLED, VERDICT_WORSE, FinetuneReport
from app.run.messages import Comparison, FinetuneDone
from datasets.masks import resize_mask
from ui.helpers.geometry import display_indices, fit_image
from ui.helpers.overlay import RED_RGB, blend, mask_overlay, paint_outline
from ui.helpers.window_geometry import GeometryStore
from ui.helpers.wording import plural
from ui.tk_support.window_placement import restore_and_remember

from .dialogs import ConfirmDialog

PANEL_SIZE = 280  # canvas side of each image panel, in pixels (less when the screen is short)
MIN_PANEL_SIZE = 160
SCREEN_MARGIN_H = 70  # screen pixels kept free for the title bar and a panel
OUTLINE_RED = RED_RGB
OUTLINE_GREEN = (0, 200, 0)
OUTLINE_PX = 2  # rim of painted regions in screen pixels, as in the brush window


def compose(
    image: np.ndarray,
    saliency: np.ndarray,
    mask: Optional[np.ndarray],
    size: int,
    *,
    opacity: float = 0.5,
    show_heatmap: bool = True,
    fill_mask: bool = False,
) -> np.ndarray:
    """The picture of one panel: `D_h x D_w x 3` uint8 fitting in `size x size`.

    The image is enlarged with nearest-neighbour (crisp pixels), the saliency (`h x w` in [0, 1]
    at the model's input size, stretched like the model's input) is blended over it at display
    resolution, then the mask is drawn as an outline (and filled with `fill_mask`).
    """
    fit = fit_image(image.shape[1], image.shape[0], size, size)
    rows, cols = display_indices(fit)
    shown = np.ascontiguousarray(image[rows][:, cols])
    shown = blend(shown, saliency, opacity, show_heatmap)
    if mask is not None and np.any(mask):
        mask = resize_mask(mask, image.shape[:2])
        big = mask[rows][:, cols]
        if fill_mask:
            shown = mask_overlay(shown, big, 0.45)
        rim = paint_outline(big, OUTLINE_PX, at_border=True)
        shown[rim & (big > 0)] = OUTLINE_RED
        shown[rim & (big < 0)] = OUTLINE_GREEN
    return shown


def painted_green(done: FinetuneDone) -> bool:
    """Whether the round had anything painted green (else its green share is 0 % -> 0 % by
    construction and says nothing)."""
    report = done.report
    if report.green_share_before > 0 or report.green_share_after > 0:
        return True
    return any(c.mask is not None and bool((np.asarray(c.mask) < 0).any()) for c in done.comparisons)


def guidance_agrees(report: FinetuneReport) -> bool:
    """Whether the guidance loss moved the way the saliency on red did. The loss measures input
    gradients under the masks (a surrogate the round minimises), the share the saliency the
    chooser shows; when the loss fell while the share on red did not, colouring the loss green
    would contradict the row below it."""
    loss_down = report.guidance_after < report.guidance_before
    red_down = report.red_share_after < report.red_share_before
    return loss_down == red_down or report.red_share_before <= 0


def stop_sentence(report: FinetuneReport) -> str:
    """How the round ended, in the chooser's words."""
    annotated = plural(report.n_annotated, "annotated image")
    if report.stop_reason == STOP_CANCELLED:
        return (
            f"You ended the round after {report.steps} steps on {annotated} ({report.seconds:.1f} s): "
            "this is the candidate so far."
        )
    return f"Stopped after {report.steps} steps on {annotated} ({report.seconds:.1f} s): {report.stop_text}."


class ChooserWindow(tk.Toplevel):
    """Compare the model before and after a fine-tune round; commit or reject it."""

    def __init__(
        self,
        master: tk.Misc,
        done: FinetuneDone,
        on_commit: Callable[[], None],
        on_reject: Callable[[], None],
        *,
        panel_size: int = PANEL_SIZE,
        geometry_store: Optional[GeometryStore] = None,
    ) -> None:
        super().__init__(master)
        self.done = done
        self.report = done.report
        self.comparisons: List[Comparison] = list(done.comparisons)
        self.on_commit = on_commit
        self.on_reject = on_reject
        self.panel_size = panel_size
        self.result: Optional[str] = None
        self.confirm: Optional[ConfirmDialog] = None  # "Commit a WORSE round?" while asked
        self.index = 0
        self.opacity = tk.DoubleVar(self, value=0.5)
        self.show_heatmap = tk.BooleanVar(self, value=True)
        self.fill_mask = tk.BooleanVar(self, value=False)
        self._photos: List[ImageTk.PhotoImage] = []  # keep references: Tk does not

        self.title(f"Fine-tune round {done.round}: commit or reject?")
        self.transient(master.winfo_toplevel())
        self.protocol("WM_DELETE_WINDOW", self.reject)

        outer = ttk.Frame(self, padding=10)
        outer.pack(fill="both", expand=True)
        self._build_summary(outer).pack(fill="x")
        # the buttons before the images: a window too short for both squeezes the images, never
        # the Commit / Reject row (the chooser reopens at the size the user left it at)
        self._build_buttons(outer).pack(side="bottom", fill="x", pady=(10, 0))
        self._build_images(outer).pack(fill="both", expand=True, pady=(10, 0))
        self._fit_screen_height()
        restore_and_remember(self, "chooser", geometry_store)  # the size the user left it at

        for key in ("<Return>", "<KP_Enter>", "<Key-c>", "<Key-C>"):
            self.bind(key, lambda _e: self.commit())
        for key in ("<Escape>", "<Key-r>", "<Key-R>"):
            self.bind(key, lambda _e: self.reject())
        self.bind("<Left>", lambda _e: self.show(self.index - 1))
        self.bind("<Right>", lambda _e: self.show(self.index + 1))
        self.show(0)
        self.focus_set()

    # ---------------------------------------------------------------------------- layout
    def _build_summary(self, parent: tk.Misc) -> ttk.Frame:
        report = self.report
        frame = ttk.LabelFrame(parent, text=f"Round {self.done.round}: old model vs fine-tuned", padding=8)
        headers = ("", "before (old)", "after (new)", "")
        for col, text in enumerate(headers):
            ttk.Label(frame, text=text, font=("TkDefaultFont", 10, "bold")).grid(row=0, column=col, sticky="w", padx=8)
        # (name, before, after, format, +1 if higher is better / -1 if lower is / 0 uncoloured,
        # hint); the accuracies measured only when there is a test folder / painted red come first.
        # A shortcut-broken change within sampling noise is not coloured, as the verdict says.
        broken_direction = 0 if report.broken_within_noise else +1
        measured = (
            (
                "Shortcut-free test accuracy",
                report.test_accuracy_before,
                report.test_accuracy_after,
                +1,
                "your test folder (only shown)",
            ),
            (
                "Shortcut-broken val. accuracy",
                report.broken_accuracy_before,
                report.broken_accuracy_after,
                broken_direction,
                "what counts: the painted content removed",
            ),
        )
        rows = (
            *(
                (name, before, after, "{:.1%}", direction, hint)
                for name, before, after, direction, hint in measured
                if before is not None and after is not None
            ),
            (
                "Validation accuracy",
                report.val_accuracy_before,
                report.val_accuracy_after,
                "{:.1%}",
                +1,
                "carries the shortcut: may fall when it is fixed",
            ),
            ("Validation loss", report.val_loss_before, report.val_loss_after, "{:.4f}", -1, "lower is better"),
            (
                "Guidance loss (annotated)",
                report.guidance_before,
                report.guidance_after,
                "{:.4g}",
                -1 if guidance_agrees(report) else 0,
                "what the round minimised (gradients under the paint)"
                if guidance_agrees(report)
                else "fell, but the share on red below did not: judge by that",
            ),
            ("Saliency on red", report.red_share_before, report.red_share_after, "{:.1%}", -1, "lower is better (discouraged)"),
            *(
                (
                    (
                        "Saliency on green",
                        report.green_share_before,
                        report.green_share_after,
                        "{:.1%}",
                        +1,
                        "higher is better (encouraged)",
                    ),
                )
                if painted_green(self.done)
                else ()
            ),
        )
        self.summary_labels = {}
        for row, (name, before_value, after_value, fmt, better, hint) in enumerate(rows, start=1):
            before, after = fmt.format(before_value), fmt.format(after_value)
            change = (after_value - before_value) * better
            colour = "#1a7f1a" if change > 0 and after != before else ("#c00000" if change < 0 and after != before else "#000000")
            ttk.Label(frame, text=name).grid(row=row, column=0, sticky="w", padx=8)
            b = ttk.Label(frame, text=before)
            b.grid(row=row, column=1, sticky="w", padx=8)
            a = ttk.Label(frame, text=after, font=("TkDefaultFont", 10, "bold"), foreground=colour)
            a.grid(row=row, column=2, sticky="w", padx=8)
            ttk.Label(frame, text=hint, foreground="#666666").grid(row=row, column=3, sticky="w", padx=8)
            self.summary_labels[name] = (b, a)
        self.stop_label = ttk.Label(
            frame,
            text=f"{stop_sentence(report)} Either way your masks are kept: Reject only discards this round's weights.",
            wraplength=700,
            justify="left",
        )
        self.stop_label.grid(row=len(rows) + 1, column=0, columnspan=4, sticky="w", padx=8, pady=(6, 0))
        # The verdict: a round that made the model worse on the shortcut-broken validation is
        # said so, never shown as an improvement.
        verdict_colour = {"better": "#1a7f1a", "worse": "#c00000"}.get(report.verdict, "#000000")
        self.verdict_label = ttk.Label(
            frame,
            text=report.verdict_text,
            foreground=verdict_colour,
            font=("TkDefaultFont", 10, "bold"),
            wraplength=700,
            justify="left",
        )
        self.verdict_label.grid(row=len(rows) + 2, column=0, columnspan=4, sticky="w", padx=8, pady=(4, 0))
        return frame

    def _build_images(self, parent: tk.Misc) -> ttk.Frame:
        frame = ttk.Frame(parent)
        nav = ttk.Frame(frame)
        nav.pack(fill="x")
        self.prev_button = ttk.Button(nav, text="\u25c0 Previous", command=lambda: self.show(self.index - 1))
        self.prev_button.pack(side="left")
        self.position_label = ttk.Label(nav, text="", anchor="center")
        self.position_label.pack(side="left", fill="x", expand=True)
        self.next_button = ttk.Button(nav, text="Next \u25b6", command=lambda: self.show(self.index + 1))
        self.next_button.pack(side="right")

        panels = ttk.Frame(frame)
        panels.pack(pady=(6, 0))
        self.canvases: List[tk.Canvas] = []
        self.caption_labels: List[ttk.Label] = []
        for col, title in enumerate(("Before: old model", "After: fine-tuned model")):
            ttk.Label(panels, text=title, font=("TkDefaultFont", 11, "bold")).grid(row=0, column=col)
            canvas = tk.Canvas(panels, width=self.panel_size, height=self.panel_size, background="#202020", highlightthickness=0)
            canvas.grid(row=1, column=col, padx=6)
            caption = ttk.Label(panels, text="", font=("TkDefaultFont", 10))
            caption.grid(row=2, column=col, pady=(4, 0))
            self.canvases.append(canvas)
            self.caption_labels.append(caption)

        options = ttk.Frame(frame)
        options.pack(fill="x", pady=(6, 0))
        self.heatmap_check = ttk.Checkbutton(options, text="Heatmap", variable=self.show_heatmap, command=self.refresh)
        self.heatmap_check.pack(side="left")
        ttk.Label(options, text="opacity").pack(side="left", padx=(12, 4))
        self.opacity_scale = ttk.Scale(
            options, from_=0.0, to=1.0, variable=self.opacity, command=lambda _v: self.refresh(), length=160
        )
        self.opacity_scale.pack(side="left")
        self.fill_check = ttk.Checkbutton(
            options,
            text="Fill mask (outline: red = discourage, green = encourage)",
            variable=self.fill_mask,
            command=self.refresh,
        )
        self.fill_check.pack(side="left", padx=(12, 0))
        return frame

    def _fit_screen_height(self) -> None:
        """Shrink the image panels until the whole window fits the screen's height: at 1280 x
        720 the bottom of the images, their captions and the view controls were cut off."""
        self.update_idletasks()
        excess = self.winfo_reqheight() - (self.winfo_screenheight() - SCREEN_MARGIN_H)
        if excess <= 0:
            return
        self.panel_size = max(MIN_PANEL_SIZE, self.panel_size - excess)
        for canvas in self.canvases:
            canvas.configure(width=self.panel_size, height=self.panel_size)

    def _build_buttons(self, parent: tk.Misc) -> ttk.Frame:
        frame = ttk.Frame(parent)
        ttk.Label(frame, text="Keys: \u2190 \u2192 browse, Enter/C commit, Esc/R reject", foreground="#666666").pack(side="left")
        self.commit_button = ttk.Button(frame, text="Commit (keep new weights)", command=self.commit)
        self.commit_button.pack(side="right")
        self.reject_button = ttk.Button(frame, text="Reject (keep old weights)", command=self.reject)
        self.reject_button.pack(side="right", padx=(0, 8))
        return frame

    # ---------------------------------------------------------------------------- browsing
    def show(self, index: int) -> None:
        """Show comparison `index` (clamped to the valid range)."""
        if not self.comparisons:
            self.position_label.configure(text="No annotated images to compare")
            for canvas in self.canvases:
                canvas.delete("all")
            for button in (self.prev_button, self.next_button):
                button.state(["disabled"])
            return
        self.index = max(0, min(index, len(self.comparisons) - 1))
        item = self.comparisons[self.index]
        self.position_label.configure(
            text=f"Image {self.index + 1} of {len(self.comparisons)}:  {item.relpath}  (true label: {item.true_label})"
        )
        self.prev_button.state(["!disabled"] if self.index > 0 else ["disabled"])
        self.next_button.state(["!disabled"] if self.index < len(self.comparisons) - 1 else ["disabled"])
        self.caption_labels[0].configure(
            text=f"predicted {item.predicted_old} ({item.confidence_old:.0%})",
            foreground="#000000" if item.predicted_old == item.true_label else "#c00000",
        )
        self.caption_labels[1].configure(
            text=f"predicted {item.predicted_new} ({item.confidence_new:.0%})",
            foreground="#000000" if item.predicted_new == item.true_label else "#c00000",
        )
        self.refresh()

    def refresh(self) -> None:
        """Redraw both panels with the current overlay options."""
        if not self.comparisons:
            return
        item = self.comparisons[self.index]
        self._photos = []
        for canvas, saliency in zip(self.canvases, (item.saliency_old, item.saliency_new)):
            picture = compose(
                item.image,
                saliency,
                item.mask,
                self.panel_size,
                opacity=float(self.opacity.get()),
                show_heatmap=bool(self.show_heatmap.get()),
                fill_mask=bool(self.fill_mask.get()),
            )
            photo = ImageTk.PhotoImage(Image.fromarray(picture), master=canvas)
            self._photos.append(photo)
            canvas.delete("all")
            canvas.create_image(self.panel_size // 2, self.panel_size // 2, image=photo, anchor="center")

    # ---------------------------------------------------------------------------- decision
    def commit(self) -> None:
        """Commit; a round judged WORSE asks first (Reject is the default answer there)."""
        if self.result is not None:
            return
        if self.report.verdict == VERDICT_WORSE:
            if self.confirm is None or not self.confirm.winfo_exists():
                self.confirm = ConfirmDialog(
                    self,
                    "Commit a WORSE round?",
                    f"{self.report.verdict_text}\n\nCommitting keeps these weights for the rest of the run. "
                    "Your masks are kept either way.",
                    "Commit anyway",
                    "Go back",
                    lambda: self._decide("commit", self.on_commit),
                )
            return
        self._decide("commit", self.on_commit)

    def reject(self) -> None:
        self._decide("reject", self.on_reject)

    def _decide(self, result: str, callback: Callable[[], None]) -> None:
        if self.result is not None:
            return
        self.result = result
        try:
            callback()
        finally:
            self.destroy()
