"""Open every window of the app on the current display and print, as JSON, where each window
and its must-see widgets lie: run under a 1280 x 720 Xvfb by test_window_fit.py."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
from test_chooser_window import make_done  # noqa: E402
from test_reasonability_window import _event as reasonability_event  # noqa: E402

from app.run import messages as msg  # noqa: E402
from datasets.masks import MaskStore  # noqa: E402
from ui.desktop import build_app  # noqa: E402
from ui.window_geometry import GeometryStore  # noqa: E402

work = Path(sys.argv[1])
window = build_app(sessions_root=str(work / "sessions"), geometry_store=GeometryStore(work / "windows.json"))
root = window.root
root.update()
report = {"screen": [root.winfo_screenwidth(), root.winfo_screenheight()], "windows": {}}


def box(widget):
    widget.update_idletasks()
    return [
        widget.winfo_rootx(),
        widget.winfo_rooty(),
        widget.winfo_width(),
        widget.winfo_height(),
        bool(widget.winfo_viewable()),
    ]


def record(name, toplevel, **widgets):
    toplevel.update()
    report["windows"][name] = {"window": box(toplevel), "widgets": {k: box(w) for k, w in widgets.items()}}


record(
    "main",
    root,
    status=window.status_var and window.device_var and window.children[next(iter(window.children))],
    log=window.log,
    progress=window.progress.finetune_bar,
    plots=window.plots,
    train=window.train_button,
)

rng = np.random.default_rng(0)
items = [
    msg.FeedbackItem(
        relpath=f"a/{i}.png",
        image=rng.integers(0, 255, (600, 900, 3), dtype=np.uint8),
        saliency=rng.random((32, 32)).astype(np.float32),
        true_label="a",
        predicted_label="b",
        confidence=0.9,
        reason="random",
    )
    for i in range(3)
]
from ui.brush_window import BrushWindow  # noqa: E402

brush = BrushWindow(
    root,
    items,
    MaskStore(work / "masks"),
    submit=lambda c: None,
    on_gallery=lambda: None,
    trust_note="Predictions may mean nothing: test",
)
brush.update()
brush.side_scroll.see(brush.done_button)
record("brush", brush, status=brush.status_label, canvas=brush.canvas, done=brush.done_button, help=brush.help_label)
brush.side_scroll.see(brush.help_label)
record("brush_scrolled", brush, help=brush.help_label)
brush.destroy()

from ui.chooser_window import ChooserWindow  # noqa: E402

chooser = ChooserWindow(root, make_done(3), lambda: None, lambda: None)
record("chooser", chooser, commit=chooser.commit_button, reject=chooser.reject_button)
chooser.destroy()

from ui.reasonability_window import ReasonabilityWindow  # noqa: E402

matrix = ReasonabilityWindow(root, reasonability_event(), on_paint=lambda r: None)
record("reasonability", matrix, paint=matrix.paint_buttons["inaccurate_unreasonable"])
matrix.destroy()

from ui.gallery_window import GalleryWindow  # noqa: E402

entries = [msg.GalleryEntry(f"a/{i}.png", "a", "a", 0.9) for i in range(100)]
gallery = GalleryWindow(root, entries, str(work), on_paint=lambda r: None)
record("gallery", gallery, paint=gallery.paint_button, close=gallery.close_button)
gallery.destroy()

from ui.dialogs import ErrorDialog, MoreEpochsDialog  # noqa: E402

more = MoreEpochsDialog(root, 6, 6, lambda n: None, lambda: None)
record("more_epochs", more, accept=more.accept_button)
more.destroy()
error = ErrorDialog(root, "Something went wrong " * 5, details="Traceback\n" * 40)
error.toggle_details()
record("error", error, ok=error.ok_button)
error.destroy()
print(json.dumps(report), flush=True)
window.teardown()
