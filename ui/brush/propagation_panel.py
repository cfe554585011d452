"""The brush window's "Apply to..." panel: propagate the red painted on this image to others.

A red stroke usually marks a thing (a watermark, a tag) and sometimes a place ("never the
bottom-right corner"). The panel offers the scopes of `app.explain.propagation`: the same content
wherever it sits (the default; its preview opens `ui.windows.content_preview_window` with the finds
outlined, to drop or correct), and the positional ones -- every training image, the images of
this image's class, the images where the model looks at the same spot -- with a preview first
(how many images and which), then Apply. It never runs the model: Preview and Apply become the trainer commands
`PreviewPropagation` / `ApplyPropagation` (the brush window saves the image's mask first), and
the trainer's answers (`PropagationPreview`, `PropagationApplied`, `PropagationFailed`) come
back through the main window into `show_preview` / `show_applied` / `show_failed`.

Apply is offered only after a preview of the same image and scope, so nothing is written
without the user having seen how many images it touches.
"""

from __future__ import annotations

import logging
import tkinter as tk
from tkinter import ttk
from typing import Any, Callable, Optional, Sequence, Tuple

from app.explain.propagation import DEFAULT_SIMILAR_SHARE
from app.run import messages as msg

log = logging.getLogger(__name__)

SCOPE_TEXT = {
    "content": "The same thing, wherever it is",
    "all": "All training images, same place",
    "class": "Images of this class",
    "similar": "Where the model looks at the same spot",
}
LIST_HEIGHT = 9  # rows of the image list
WRAP = 250  # wrap length of the notes, screen pixels
ERROR_COLOUR = "#c00000"
NOTE_COLOUR = "#555555"

# source(): save the image on screen and return (relpath, "") when its mask has red to
# propagate, else (None, a sentence saying what to do).
SourceCallback = Callable[[], Tuple[Optional[str], str]]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


class PropagationPanel(ttk.LabelFrame):
    """Scope radio buttons, Preview / Apply, a status line and the list of target images.

    submit(command): hands a trainer command over (the app passes `trainer.submit`).
    source(): see `SourceCallback`. on_applied(event): called after `show_applied`, e.g. so the
    brush window reloads the masks of this round's other images.
    """

    def __init__(
        self,
        master: tk.Misc,
        submit: Callable[[Any], None],
        source: SourceCallback,
        *,
        on_applied: Optional[Callable[[msg.PropagationApplied], None]] = None,
    ) -> None:
        super().__init__(master, text="Apply this image's red to...", padding=8)
        self.submit = submit
        self.source = source
        self.on_applied = on_applied
        self.relpath: Optional[str] = None  # image on screen
        self.pending: Optional[Tuple[str, Tuple[str, ...], str]] = None  # (kind, sources, scope)
        self.preview: Optional[msg.PropagationPreview] = None  # last preview answered
        self.scope_var = tk.StringVar(self, value="content")
        self.content_window: Optional[Any] = None  # ui.windows.content_preview_window.ContentPreviewWindow
        self.on_open_images: Optional[Callable[[tuple], None]] = None  # set by the brush window

        self.scope_buttons = {}
        for scope, text in SCOPE_TEXT.items():
            button = ttk.Radiobutton(
                self, text=text, value=scope, variable=self.scope_var, command=self._scope_changed, takefocus=False
            )
            button.pack(anchor="w")
            self.scope_buttons[scope] = button
        buttons = ttk.Frame(self)
        buttons.pack(fill="x", pady=(6, 0))
        self.preview_button = ttk.Button(buttons, text="Preview", command=self.request_preview, takefocus=False)
        self.apply_button = ttk.Button(buttons, text="Apply", command=self.request_apply, takefocus=False)
        self.preview_button.pack(side="left", expand=True, fill="x", padx=(0, 1))
        self.apply_button.pack(side="left", expand=True, fill="x", padx=(1, 0))
        self.status_label = ttk.Label(
            self, wraplength=WRAP, justify="left", text="Paint red, then Preview: which images would get it."
        )
        self.status_label.pack(anchor="w", fill="x", pady=(6, 2))
        work = ttk.Frame(self)  # shown while the trainer works on a preview or apply
        work.pack(fill="x")
        self.progress_bar = ttk.Progressbar(work, mode="determinate", maximum=1.0)
        self.cancel_button = ttk.Button(work, text="Cancel", command=self.request_cancel, takefocus=False)
        self.progress_bar.pack(side="left", fill="x", expand=True, padx=(0, 4))
        self.cancel_button.pack(side="left")
        box = ttk.Frame(self)
        box.pack(fill="both", expand=True)
        self.listbox = tk.Listbox(box, height=LIST_HEIGHT, width=30, activestyle="none", takefocus=False, exportselection=False)
        scrollbar = ttk.Scrollbar(box, orient="vertical", command=self.listbox.yview)
        self.listbox.configure(yscrollcommand=scrollbar.set)
        self.listbox.pack(side="left", fill="both", expand=True)
        scrollbar.pack(side="left", fill="y")
        self.note_label = ttk.Label(
            self,
            wraplength=WRAP,
            justify="left",
            foreground=NOTE_COLOUR,
            text="Propagated masks are marked as such; images you painted yourself keep their own mask.",
        )
        self.note_label.pack(anchor="w", fill="x", pady=(4, 0))
        self._update_buttons()

    # ------------------------------------------------------------------------ state
    @property
    def scope(self) -> str:
        return self.scope_var.get()

    def set_image(self, relpath: str, true_label: str = "") -> None:
        """The brush window shows another image: a preview of the previous one no longer holds."""
        if relpath == self.relpath:
            return
        self.relpath = relpath
        self.scope_buttons["class"].configure(text=f"Images of class {true_label}" if true_label else SCOPE_TEXT["class"])
        if self.pending is None:
            self._forget_preview("Paint red, then Preview: which images would get it.")

    def _scope_changed(self) -> None:
        if self.pending is None:
            self._forget_preview("Press Preview to see which images this scope reaches.")

    def _forget_preview(self, text: str) -> None:
        self.preview = None
        self._set_status(text)
        self._fill_list(())
        self._update_buttons()

    def _preview_holds(self) -> bool:
        preview = self.preview
        return preview is not None and preview.sources == (self.relpath,) and preview.scope == self.scope

    def _update_buttons(self) -> None:
        busy = self.pending is not None
        self.preview_button.state(["disabled"] if busy or self.relpath is None else ["!disabled"])
        can_apply = not busy and self._preview_holds() and self.preview.count > 0
        self.apply_button.state(["!disabled"] if can_apply else ["disabled"])
        for button in self.scope_buttons.values():
            button.state(["disabled"] if busy else ["!disabled"])
        self.cancel_button.state(["!disabled"] if busy else ["disabled"])
        if not busy:
            self.progress_bar.configure(value=0.0)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status_label.configure(text=text, foreground=ERROR_COLOUR if error else "")

    def _fill_list(self, relpaths: Sequence[str]) -> None:
        self.listbox.delete(0, "end")
        if relpaths:
            self.listbox.insert("end", *relpaths)

    # ------------------------------------------------------------------------ requests
    def _send(self, kind: str) -> bool:
        relpath, problem = self.source()
        if relpath is None:
            self._set_status(problem, error=True)
            return False
        self.relpath = relpath
        sources, scope = (relpath,), self.scope
        if kind == "preview":
            command: Any = msg.PreviewPropagation(sources, scope)
        else:  # the plan just reviewed, written as shown (no second search)
            plan_id = self.preview.plan_id if self.preview else 0
            command = msg.ApplyPropagation(sources, scope, plan_id=plan_id)
            window = self._content_window()
            if scope == "content" and window is not None and window.choices.sources == sources:
                command = window.choices.apply_command(plan_id)  # less what was unticked there
        try:
            self.submit(command)
        except Exception as error:  # noqa: BLE001 -- shown in the panel, the window stays usable
            log.exception("cannot send %r", command)
            self._set_status(f"Could not ask the trainer: {error}", error=True)
            return False
        self.pending = (kind, sources, scope)
        self._set_status("Looking for the images..." if kind == "preview" else "Writing the masks...")
        self._update_buttons()
        return True

    def request_preview(self) -> bool:
        """Preview button: save the image's mask and ask the trainer which images it reaches."""
        return self._send("preview")

    def request_apply(self) -> bool:
        """Apply button: write the propagated masks (after a preview of this image and scope)."""
        if not self._preview_holds():
            self._set_status("Preview first: it shows which images Apply would change.", error=True)
            return False
        return self._send("apply")

    def request_cancel(self) -> None:
        """Cancel: stop the preview or apply under way (between images)."""
        self.submit(msg.CancelPropagation())
        self._set_status("Cancelling...")

    # ------------------------------------------------------------------------ answers
    def _content_window(self) -> Optional[Any]:
        window = self.content_window
        return window if window is not None and window.winfo_exists() else None

    def show_progress(self, event: msg.PropagationProgress) -> None:
        """A preview or apply under way: the bar, and the content window's bar when it asked."""
        if self.pending is not None and self.pending[1:] == (tuple(event.sources), event.scope):
            self.progress_bar.configure(value=event.done / event.total if event.total else 0.0)
            what = "Looking through the images" if event.stage == "finding" else "Writing the masks"
            self._set_status(f"{what}: {event.done} of {event.total}...")
        window = self._content_window()
        if window is not None and window.busy is not None and window.choices.sources == tuple(event.sources):
            window.show_progress(event)

    def show_page(self, event: msg.PreviewPageItems) -> None:
        window = self._content_window()
        if window is not None:
            window.show_page(event)

    def _answered(self, sources: Tuple[str, ...], scope: str) -> None:
        if self.pending is not None and self.pending[1:] == (tuple(sources), scope):
            self.pending = None

    def _about(self, sources: Tuple[str, ...]) -> str:
        """' (from a/x.png)' when the answer is about another image than the one on screen."""
        if tuple(sources) == (self.relpath,):
            return ""
        return f" (from {', '.join(sources)})"

    def show_preview(self, event: msg.PropagationPreview) -> None:
        self._answered(event.sources, event.scope)
        self.preview = event
        text = (
            f"{_plural(event.count, 'image')} would get this red "
            f"({SCOPE_TEXT.get(event.scope, event.scope).lower()}){self._about(event.sources)}."
        )
        if event.skipped_hand_painted:
            count = len(event.skipped_hand_painted)
            text += f" {_plural(count, 'image')} you painted {'keeps its' if count == 1 else 'keep their'} own mask."
        if event.count and event.scope == "content":
            learnt = len(event.learned_from)
            if learnt > 1:
                text += f" Learnt from your {learnt} painted images"
                text += f" and {_plural(event.corrections, 'correction')}." if event.corrections else "."
            text += " See where in the preview window; Apply there."
        elif event.count:
            text += " Apply writes them."
        elif event.scope == "content":
            text += " Paint the thing on another image or two, then Preview again."
        elif event.scope == "similar":
            text += f" No other image has {DEFAULT_SIMILAR_SHARE:.0%} of its saliency on this red; try another scope."
        self._set_status(text)
        self._fill_list(event.relpaths)
        self._update_buttons()
        if event.scope == "content" and event.items:
            self._show_content_preview(event)

    def _show_content_preview(self, event: msg.PropagationPreview) -> None:
        from ui.windows.content_preview_window import ContentPreviewWindow

        window = self.content_window
        if window is None or not window.winfo_exists() or window.choices.sources != tuple(event.sources):
            if window is not None and window.winfo_exists():
                window.destroy()
            window = ContentPreviewWindow(self.winfo_toplevel(), event.sources, self.submit, on_open=self.on_open_images)
            self.content_window = window
        window.show(event)
        window.lift()

    def show_applied(self, event: msg.PropagationApplied) -> None:
        self._answered(event.sources, event.scope)
        window = self._content_window()
        if window is not None and event.scope == "content" and window.choices.sources == tuple(event.sources):
            window.destroy()  # its plan is written; the panel says what was
            self.content_window = None
        self.preview = None  # applied: Apply again only after a new preview
        text = f"Wrote {_plural(event.written, 'propagated mask')}{self._about(event.sources)}."
        if event.skipped_hand_painted:
            text += f" {_plural(event.skipped_hand_painted, 'hand-painted image')} kept their own."
        if event.removed:
            text += f" Removed {_plural(event.removed, 'earlier propagated mask')}."
        self._set_status(text)
        self._fill_list(event.relpaths)
        self._update_buttons()
        if self.on_applied is not None:
            self.on_applied(event)

    def show_failed(self, event: msg.PropagationFailed) -> None:
        self._answered(event.sources, event.scope)
        self._set_status(event.message, error=not event.cancelled)
        self._update_buttons()
        window = self._content_window()
        if window is not None and window.busy is not None:
            window.show_failed(event)
