"""The discovery window: the training set grouped by where the model looks, shortcut groups first.

It loads the session's checkpoint into a model of its own (the trainer's model is never touched)
and runs `app.explain.discovery.discover` in a background thread, which reports progress and
the result on a queue; the Tk side drains it every `POLL_MS`. Each group is one row: its mean
heatmap, what sets its images apart from the rest of their class (`Cluster.shared_look`), a
strip of its most typical images with their heatmaps, and one line (size, class mix,
how much hiding the maps' top region drops the class, how concentrated and where). "Paint one"
hands the group's most typical image to `on_paint` (the main window opens it in the brush
window of the round, from where content propagation carries the painted content to the rest).
"""

from __future__ import annotations

import queue
import threading
import tkinter as tk
from dataclasses import dataclass
from tkinter import ttk
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, ImageTk

from ui.helpers.overlay import blend, heatmap_rgba
from ui.helpers.window_geometry import GeometryStore
from ui.tk_support.window_placement import restore_and_remember
from ui.widgets.scrollable import ScrollableFrame

POLL_MS = 40
THUMB = 72  # thumbnail side in pixels
THUMBS_PER_GROUP = 8
HEAT_OPACITY = 0.4  # the thumbnail stays readable under its heatmap
WRAP = 760


@dataclass(frozen=True)
class DiscoveryProgress:
    done: int
    total: int


@dataclass(frozen=True)
class DiscoveryFinished:
    result: Any  # app.explain.discovery.Discovery
    dataset: Any  # the ImageFolderData it ran on (thumbnails)


@dataclass(frozen=True)
class DiscoveryFailed:
    message: str


def run_discovery(
    checkpoint_path: str,
    train_dir: str,
    post: Callable[[Any], None],
    stop: threading.Event,
    device_name: str = "cpu",
    pool_size: Optional[int] = None,
) -> None:
    """The worker: load the checkpoint and the training folder, discover, post the outcome."""
    try:
        from app.engine.checkpoint import load_checkpoint, model_from_checkpoint
        from app.explain.discovery import discover
        from datasets import ImageFolderData
        from models import pick_device

        checkpoint = load_checkpoint(checkpoint_path)
        device = pick_device(device_name)
        dataset = ImageFolderData(train_dir, checkpoint.input_size, checkpoint.mean, checkpoint.std)
        model = model_from_checkpoint(checkpoint).to(device).eval()
        result = discover(
            model,
            dataset,
            device=device,
            pool_size=pool_size,
            progress=lambda done, total: post(DiscoveryProgress(done, total)),
            should_stop=stop.is_set,
        )
        if result is not None:
            post(DiscoveryFinished(result, dataset))
    except Exception as error:  # noqa: BLE001 -- shown in the window, not a crash of the app
        post(DiscoveryFailed(f"{type(error).__name__}: {error}"))


def thumbnail(image: np.ndarray, saliency: Optional[np.ndarray], side: int = THUMB) -> Image.Image:
    """An RGB image (H x W x 3 uint8) with its heatmap (h x w in [0, 1]) blended, `side` x `side`."""
    picture = Image.fromarray(image).resize((side, side), Image.NEAREST)
    if saliency is None:
        return picture
    return Image.fromarray(blend(np.asarray(picture), saliency, HEAT_OPACITY))


class DiscoveryWindow(tk.Toplevel):
    """Runs discovery on `checkpoint_path` x `train_dir` and shows its groups."""

    def __init__(
        self,
        master: tk.Misc,
        checkpoint_path: str,
        train_dir: str,
        *,
        on_paint: Optional[Callable[[Sequence[str]], object]] = None,
        device_name: str = "cpu",
        pool_size: Optional[int] = None,
        geometry_store: Optional[GeometryStore] = None,
    ) -> None:
        super().__init__(master)
        self.title("Discovery: where the model looks")
        self.on_paint = on_paint
        self.events: "queue.Queue[Any]" = queue.Queue()
        self.stop = threading.Event()
        self.result: Any = None
        self.error: Optional[str] = None
        self.paint_buttons: List[ttk.Button] = []
        self.group_labels: List[ttk.Label] = []
        self._photos: List[ImageTk.PhotoImage] = []  # Tk shows a PhotoImage only while Python holds it
        self._after: Optional[str] = None
        self._build()
        self.protocol("WM_DELETE_WINDOW", self.close)
        self.bind("<Escape>", lambda _e: self.close())
        self.thread = threading.Thread(
            target=run_discovery,
            args=(checkpoint_path, train_dir, self.events.put, self.stop, device_name, pool_size),
            daemon=True,
            name="discovery",
        )
        self.thread.start()
        self._after = self.after(POLL_MS, self._poll)
        restore_and_remember(self, "discovery", geometry_store)

    def _build(self) -> None:
        outer = ttk.Frame(self, padding=10)
        outer.pack(fill="both", expand=True)
        intro = (
            "The training images grouped by where and at what the model looks (per class), the groups whose "
            "decision rests on a few pixels first: a shortcut shows up as a group whose maps all light one small "
            "thing. Paint one image of such a group; content propagation finds the thing in the others."
        )
        ttk.Label(outer, text=intro, wraplength=WRAP, justify="left").pack(fill="x")
        self.status_var = tk.StringVar(self, value="Explaining the training images...")
        ttk.Label(outer, textvariable=self.status_var).pack(fill="x", pady=(6, 2))
        self.progress = ttk.Progressbar(outer, mode="determinate", maximum=1.0)
        self.progress.pack(fill="x")
        self.scroll = ScrollableFrame(outer)
        self.scroll.pack(fill="both", expand=True, pady=(8, 0))
        self.groups = self.scroll.body

    # ------------------------------------------------------------------ events
    def _poll(self) -> None:
        self._after = None
        for _ in range(50):
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            self.handle(event)
        if self.winfo_exists() and self.result is None and self.error is None:
            self._after = self.after(POLL_MS, self._poll)

    def handle(self, event: Any) -> None:
        if isinstance(event, DiscoveryProgress):
            self.progress["value"] = event.done / max(1, event.total)
            self.status_var.set(f"Explained {event.done} of {event.total} images...")
        elif isinstance(event, DiscoveryFinished):
            self.result = event.result
            self.progress["value"] = 1.0
            self.status_var.set(
                f"{len(event.result.images.indices)} images in {len(event.result.clusters)} groups "
                f"(formed by {event.result.method} maps, shown by {event.result.display_method}, "
                f"{event.result.seconds:.1f} s); most shortcut-like first"
            )
            self._show(event.result, event.dataset)
        elif isinstance(event, DiscoveryFailed):
            self.error = event.message
            self.status_var.set(f"Discovery failed: {event.message}")

    def _show(self, result: Any, dataset: Any) -> None:
        scores = result.images
        row_of: Dict[int, int] = {index: row for row, index in enumerate(scores.indices)}
        for cluster in result.clusters:
            frame = ttk.LabelFrame(self.groups, text=f"Group {cluster.rank + 1}", padding=6)
            frame.pack(fill="x", pady=(0, 6))
            label = ttk.Label(frame, text=cluster.describe(), wraplength=WRAP, justify="left")
            label.pack(fill="x")
            self.group_labels.append(label)
            strip = ttk.Frame(frame)
            strip.pack(fill="x", pady=(4, 0))
            mean = Image.fromarray(heatmap_rgba(cluster.mean_map, (THUMB, THUMB))[..., :3])
            self._image_label(strip, mean, "mean heatmap")
            if cluster.shared_look is not None:  # lights a shortcut at a fixed place that no heatmap shows
                look = Image.fromarray(heatmap_rgba(cluster.shared_look, (THUMB, THUMB))[..., :3])
                self._image_label(strip, look, "unlike its class")
            for index in cluster.indices[:THUMBS_PER_GROUP]:
                saliency = scores.maps[row_of[index]].numpy()
                peak = float(saliency.max())
                shown = saliency / peak if peak > 0 else saliency
                self._image_label(strip, thumbnail(dataset.display_image(index, max_side=THUMB), shown), "")
            button = ttk.Button(frame, text="Paint one", command=lambda relpaths=cluster.relpaths[:1]: self._paint(relpaths))
            button.pack(anchor="w", pady=(4, 0))
            if self.on_paint is None:
                button.state(["disabled"])
            self.paint_buttons.append(button)

    def _image_label(self, parent: tk.Misc, picture: Image.Image, caption: str) -> None:
        photo = ImageTk.PhotoImage(picture, master=self)
        self._photos.append(photo)
        cell = ttk.Frame(parent)
        cell.pack(side="left", padx=(0, 4))
        ttk.Label(cell, image=photo).pack()
        if caption:
            ttk.Label(cell, text=caption).pack()

    def _paint(self, relpaths: Sequence[str]) -> None:
        if self.on_paint is not None:
            self.on_paint(list(relpaths))

    def close(self) -> None:
        self.stop.set()
        if self._after is not None:
            self.after_cancel(self._after)
            self._after = None
        self.destroy()
