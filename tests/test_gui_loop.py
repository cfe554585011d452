"""The whole loop through the real windows on the demo data, driven by real Tk events.

Train an epoch -> the brush window opens -> strokes by `event_generate` on its canvas -> the
mask file on disk holds the painted pixels -> Done -> the fine-tune round runs -> the chooser
opens -> Commit: training resumes with different weights (those of the saved checkpoint);
Reject: the weights stay bit-identical to before the round.

The demo data is cut to a few images per class (same files, same classes) so an epoch takes
seconds on a shared 2-core machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tk_wait import wait_until as _wait_until

from app.engine.checkpoint import load_checkpoint
from app.engine.config import FinetuneConfig
from datasets import GREEN, RED, MaskStore

pytestmark = [pytest.mark.gui, pytest.mark.slow]

TRAIN_PER_CLASS = 12
VAL_PER_CLASS = 4


def wait_until(widget, predicate, timeout=120.0):
    """The shared waiter, with the longer timeout a training round needs."""
    _wait_until(widget, predicate, timeout)


@pytest.fixture(scope="module")
def mini_demo(tmp_path_factory):
    """The demo data with TRAIN_PER_CLASS / VAL_PER_CLASS images per digit."""
    from datasets import ensure_demo_data

    full = ensure_demo_data(tmp_path_factory.getbasetemp() / "demo")
    mini = tmp_path_factory.mktemp("mini-demo")
    shutil.copy(full / "demo.json", mini / "demo.json")
    for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        for class_dir in sorted((full / split).iterdir()):
            target = mini / split / class_dir.name
            target.mkdir(parents=True)
            for image in sorted(class_dir.glob("*.png"))[:count]:
                shutil.copy(image, target / image.name)
    return mini


@pytest.fixture
def window(tk_root, tmp_path, mini_demo):
    from ui.main_window.window import MainWindow

    made = MainWindow(
        tk_root,
        demo_dir=str(mini_demo),
        sessions_root=str(tmp_path / "sessions"),
        finetune_config=FinetuneConfig(max_steps=10, check_every=5, replay_batch=16),
        destroy_root_on_close=False,
    )
    form = made.settings.vars
    form["epochs"].set("2")
    form["feedback_every"].set("1")
    form["images_per_round"].set("2")
    form["model"].set("small_cnn")
    form["guidance"].set("rrr")
    tk_root.update()
    yield made
    if made.trainer is not None:
        made.trainer.stop()
    if made.thread is not None:
        made.thread.join(timeout=30)
    made.teardown()


def snapshot(model: torch.nn.Module) -> dict:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def drag(canvas, points) -> None:
    """A real press-move-release on the canvas through the points (canvas pixels)."""
    (x0, y0), rest = points[0], points[1:]
    canvas.event_generate("<Motion>", x=x0, y=y0)
    canvas.event_generate("<ButtonPress-1>", x=x0, y=y0)
    for x, y in rest:
        canvas.event_generate("<B1-Motion>", x=x, y=y)
    x1, y1 = points[-1]
    canvas.event_generate("<ButtonRelease-1>", x=x1, y=y1)
    canvas.update()


def canvas_point(brush, col: float, row: float):
    """Canvas pixel of the image point (col, row) in image pixels."""
    from ui.helpers.geometry import to_canvas

    x, y = to_canvas(brush.fit, col, row)
    return int(round(x)), int(round(y))


def paint_first_image(window):
    """Red stroke along the top rows, green dab in the centre; returns (relpath, masks store)."""
    brush = window.brush_window
    wait_until(brush, lambda: brush.canvas.winfo_viewable() and brush.fit is not None, 20)
    brush.set_radius(1)
    brush.set_tool("red")
    drag(brush.canvas, [canvas_point(brush, c + 0.5, 1.5) for c in (2, 9, 16, 23, 29)])
    brush.event_generate("<KeyPress-g>")  # the G key: green brush
    assert brush.tool == "green"
    drag(brush.canvas, [canvas_point(brush, 15.5, 15.5), canvas_point(brush, 17.5, 15.5)])
    return brush.item.relpath


def run_round(window, decide: str):
    """Train epoch 1, paint, fine-tune; pause, press `decide` in the chooser; returns what the
    assertions need. The trainer is paused before the decision so the weights can be compared
    before the next epoch touches them."""
    assert window.on_train() is True
    wait_until(window, lambda: window.brush_window is not None)
    trainer = window.trainer
    before_round = snapshot(trainer.model)  # the thread waits for paint: weights are still
    relpath = paint_first_image(window)
    window.brush_window.done_button.invoke()

    store = MaskStore(Path(window.session.folder) / "masks")
    mask = store.load_array(relpath)
    assert mask is not None and mask.shape == (32, 32)
    assert (mask[1, 2:30] == RED).all()  # the red stroke is continuous between the samples
    assert mask[15, 15] == GREEN and mask[15, 17] == GREEN
    assert mask[25, 5] == 0
    expected_red = set(range(1, 31))  # radius 1 around the row-1.5 line through cols 2.5..29.5
    assert set(np.flatnonzero((mask == RED).any(axis=0))) <= expected_red

    wait_until(window, lambda: window.chooser_window is not None)
    chooser = window.chooser_window
    assert [c.relpath for c in chooser.comparisons] == [relpath]
    assert same_weights(snapshot(trainer.model), before_round)  # the candidate is a copy
    window.pause_button.invoke()
    button = chooser.commit_button if decide == "commit" else chooser.reject_button
    button.invoke()
    if decide == "commit" and chooser.confirm is not None:  # a WORSE round asks first
        chooser.confirm.yes_button.invoke()
    assert chooser.result == decide
    wait_until(window, lambda: "RoundDecided" in window.event_counts and window.state == "paused")
    after_round = snapshot(trainer.model)
    saved = load_checkpoint(window.session.checkpoint_path).state_dict
    assert same_weights(after_round, saved)  # what training resumes from is what is on disk
    batches_before_resume = window.event_counts["BatchFinished"]
    window.pause_button.invoke()  # resume
    wait_until(window, lambda: window.finished is not None)
    assert not window.finished.stopped
    assert window.event_counts["BatchFinished"] > batches_before_resume  # training resumed
    return before_round, after_round, relpath


def test_commit_trains_on_with_the_fine_tuned_weights(window):
    before, after, relpath = run_round(window, "commit")
    assert not same_weights(before, after)
    session = window.session
    history = session.history()
    assert [(row["round"], row["epoch"], row["decision"], row["images"]) for row in history] == [(1, 1, "commit", [relpath])]
    assert [(r.round, r.epoch, r.committed) for r in window.plots.rounds] == [(1, 1, True)]
    assert window.plots.epochs == [1, 2]
    assert "Round 1 (after epoch 1) committed: training continues with the fine-tuned weights" in window.log.lines()
    # the mask keeps guiding epoch 2: the run's data still holds it
    assert session.masks.annotated() == [relpath]
    final = load_checkpoint(session.checkpoint_path)
    assert final.epoch == 2


def test_reject_leaves_the_weights_bit_identical(window):
    before, after, relpath = run_round(window, "reject")
    assert same_weights(before, after)
    history = window.session.history()
    assert [(row["decision"], row["images"]) for row in history] == [("reject", [relpath])]
    assert [(r.committed, r.finetuned) for r in window.plots.rounds] == [(False, True)]
    stored = json.loads((Path(window.session.folder) / "session.json").read_text())
    assert stored["train_config"]["feedback_every"] == 1
