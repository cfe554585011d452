"""Open every window of the app on the current display and print, as JSON, where each window
and its must-see widgets lie: run under a 1280 x 720 Xvfb by test_window_fit.py.

A widget's box is the part of it that is *visible*: clipped by every widget it sits in (a
scrolled frame, a squeezed panel) up to its window, and by the screen; and a label whose text
needs more room than it got counts as cut (`fits` false). The window's own size says nothing
about this: a window that fits the screen can still clip its bottom rows."""

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
from ui.helpers.window_geometry import GeometryStore  # noqa: E402

work = Path(sys.argv[1])
window = build_app(sessions_root=str(work / "sessions"), geometry_store=GeometryStore(work / "windows.json"))
root = window.root
root.update()
report = {"screen": [root.winfo_screenwidth(), root.winfo_screenheight()], "windows": {}}


def box(widget):
    """[x, y, width, height, viewable] of the visible part of `widget` on screen."""
    widget.update_idletasks()
    x0, y0 = widget.winfo_rootx(), widget.winfo_rooty()
    x1, y1 = x0 + widget.winfo_width(), y0 + widget.winfo_height()
    full = (x1 - x0) * (y1 - y0)
    parent = widget
    while parent.winfo_toplevel() is not parent:
        parent = parent.master
        px, py = parent.winfo_rootx(), parent.winfo_rooty()
        x0, y0 = max(x0, px), max(y0, py)
        x1, y1 = min(x1, px + parent.winfo_width()), min(y1, py + parent.winfo_height())
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, widget.winfo_screenwidth()), min(y1, widget.winfo_screenheight())
    visible = max(0, x1 - x0) * max(0, y1 - y0)
    fits = widget.winfo_reqheight() <= widget.winfo_height() + 1 and widget.winfo_reqwidth() <= widget.winfo_width() + 1
    whole = visible >= full and (fits or widget.winfo_class() not in ("TLabel", "Label"))
    return [x0, y0, max(0, x1 - x0), max(0, y1 - y0), bool(widget.winfo_viewable()) and whole]


def record(name, toplevel, **widgets):
    toplevel.update()
    report["windows"][name] = {"window": box(toplevel), "widgets": {k: box(w) for k, w in widgets.items()}}


def label_of(frame, variable):
    """The label in `frame` that shows `variable`."""
    return next(
        w for w in frame.winfo_children() if str(w.cget("textvariable") if "textvariable" in w.keys() else "") == str(variable)
    )


window.progress.finetune_text.set(  # the longest line the round shows: it was cut off at 1280 px
    "Fine-tune round 1: measuring the model before the round (then up to 150 steps)..."
    "\ncheck at step 10: guidance 1.48, val loss 0.532"
)
window.session_var.set(
    str(work / "sessions" / "20261207-190000") + "\n(Train continues this session; New session starts another)"
)
from app.engine.trust_checks import TrustWarning  # noqa: E402

window.trust_banner.show(
    (
        TrustWarning(
            "few_steps",
            "Too few steps for BatchNorm's statistics",
            "120 training images make 2 steps " * 3,
            ("frozen_batchnorm", "pretrained"),
        ),
        TrustWarning("few_images", "Few images per class", "as few as 12 training images in a class " * 2, ("smaller_model",)),
    )
)
window.trust_banner.set_actions_enabled(False)  # as during a run
record(
    "main",
    root,
    banner_title=window.trust_banner.title_label,
    banner_busy=window.trust_banner.busy_label,
    banner_hide=window.trust_banner.hide_button,
    status=window.status_var and window.device_var and window.children[next(iter(window.children))],
    log=window.log,
    progress=window.progress.finetune_bar,
    finetune_status=label_of(window.progress, window.progress.finetune_text),
    plots=window.plots,
    train=window.train_button,
    open_session=window.open_session_button,
    new_session=window.new_session_button,
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
from ui.brush.window import BrushWindow  # noqa: E402

brush = BrushWindow(
    root,
    items,
    MaskStore(work / "masks"),
    submit=lambda c: None,
    on_gallery=lambda: None,
    trust_note="Predictions may mean nothing: test",
)
brush.update()
record("brush", brush, status=brush.status_label, canvas=brush.canvas, done=brush.done_button, cancel=brush.cancel_button)
brush.side_scroll.see(brush.help_label)
record("brush_scrolled", brush, help=brush.help_label)
brush.destroy()

from ui.windows.chooser_window import ChooserWindow  # noqa: E402

chooser = ChooserWindow(root, make_done(3), lambda: None, lambda: None)
record(
    "chooser",
    chooser,
    commit=chooser.commit_button,
    reject=chooser.reject_button,
    before=chooser.canvases[0],
    after=chooser.canvases[1],
    caption=chooser.caption_labels[1],
    heatmap=chooser.heatmap_check,
    opacity=chooser.opacity_scale,
)
chooser.destroy()

from ui.windows.reasonability_window import ReasonabilityWindow  # noqa: E402

matrix = ReasonabilityWindow(root, reasonability_event(), on_paint=lambda r: None)
record(
    "reasonability",
    matrix,
    paint=matrix.paint_buttons["inaccurate_unreasonable"],
    footnote=matrix.judged_label,
    close=matrix.close_button,
)
matrix.destroy()

from ui.windows.gallery_window import GalleryWindow  # noqa: E402

entries = [msg.GalleryEntry(f"a/{i}.png", "a", "a", 0.9) for i in range(100)]
gallery = GalleryWindow(root, entries, str(work), on_paint=lambda r: None)
record("gallery", gallery, paint=gallery.paint_button, close=gallery.close_button)
gallery.destroy()

from ui.windows.dialogs import ErrorDialog, MoreEpochsDialog  # noqa: E402

more = MoreEpochsDialog(root, 6, 6, lambda n: None, lambda: None)
record("more_epochs", more, accept=more.accept_button)
more.destroy()
error = ErrorDialog(root, "Something went wrong " * 5, details="Traceback\n" * 40)
error.toggle_details()
record("error", error, ok=error.ok_button)
error.destroy()
print(json.dumps(report), flush=True)
window.teardown()
