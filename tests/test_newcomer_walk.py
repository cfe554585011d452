"""A newcomer's walk through the correction loop, on the real app and engine, by real Tk events.

demo -> paint 3 images -> Preview -> Not this -> Preview again (it learns from the correction)
-> Apply (the reviewed plan, no second search) -> Done -> chooser -> Commit -> Stop -> Train ->
close -> reopen (the same session), without a single error line in the log or an error dialog.
Each step's time is printed (run with -s to see the table) and kept in the test's properties.

The demo data is cut to a few images per class (same files) so the walk takes about a minute
on a shared 2-core machine. The red goes over each image's swatch, read from the demo's truth
masks, with the rectangle tool (the M key and a drag on the canvas), as a user would.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from tk_wait import wait_until

from app.engine.config import FinetuneConfig
from app.run import messages as msg
from datasets import RED, read_mask

pytestmark = [pytest.mark.gui, pytest.mark.slow]

TRAIN_PER_CLASS = 12
VAL_PER_CLASS = 4


@pytest.fixture(scope="module")
def mini_demo(tmp_path_factory):
    """The demo data with TRAIN_PER_CLASS / VAL_PER_CLASS images per digit, and its truth masks."""
    from datasets import ensure_demo_data

    full = ensure_demo_data(tmp_path_factory.getbasetemp() / "demo")
    mini = tmp_path_factory.mktemp("mini-demo")
    shutil.copy(full / "demo.json", mini / "demo.json")
    for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        for class_dir in sorted((full / split).iterdir()):
            for folder in (split, f"truth/{split}"):
                (mini / folder / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.glob("*.png"))[:count]:
                shutil.copy(image, mini / split / class_dir.name / image.name)
                shutil.copy(
                    full / "truth" / split / class_dir.name / image.name, mini / "truth" / split / class_dir.name / image.name
                )
    return mini


class Walk:
    """Times the steps and keeps every event the window handled."""

    def __init__(self):
        self.times = {}
        self.events = []
        self._started = time.monotonic()

    def listen(self, window):
        window.listeners.append(self.events.append)

    def done(self, step):
        now = time.monotonic()
        self.times[step] = now - self._started
        self._started = now
        print(f"walk: {step}: {self.times[step]:.1f} s", flush=True)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def _make_window(tk_root, sessions, demo):
    from ui.main_window.window import MainWindow

    window = MainWindow(
        tk_root,
        demo_dir=str(demo),
        sessions_root=str(sessions),
        finetune_config=FinetuneConfig(max_steps=10, check_every=5, replay_batch=16),
        destroy_root_on_close=False,
        reopen_last=True,
    )
    tk_root.update()
    return window


def _watch_errors(window):
    """Every error line the log shows and every error dialog the window opens, kept in a list
    that outlives the window (its widgets are gone after close)."""
    errors = []
    append, show_error = window.log.append, window.show_error

    def log_line(text, level="info"):
        if level == "error":
            errors.append(text)
        return append(text, level)

    def dialog(message, **options):
        errors.append(f"dialog: {message}")
        return show_error(message, **options)

    window.log.append, window.show_error = log_line, dialog
    return errors


def _drag(brush, points):
    """Press, move, release on the canvas through image points (col, row)."""
    from ui.helpers.geometry import to_canvas

    canvas = brush.canvas
    spots = [tuple(int(round(v)) for v in to_canvas(brush.fit, col, row)) for col, row in points]
    canvas.event_generate("<Motion>", x=spots[0][0], y=spots[0][1])
    canvas.event_generate("<ButtonPress-1>", x=spots[0][0], y=spots[0][1])
    for x, y in spots[1:]:
        canvas.event_generate("<B1-Motion>", x=x, y=y)
    canvas.event_generate("<ButtonRelease-1>", x=spots[-1][0], y=spots[-1][1])
    canvas.update()


def _paint_swatches(brush, demo, count):
    """A red rectangle over the swatch of the first `count` images (from the truth masks)."""
    painted = []
    for index in range(count):
        if index:
            brush.next_button.invoke()
        wait_until(brush, lambda: brush.fit is not None, 20)
        truth = read_mask(demo / "truth" / "train" / brush.item.relpath, size=brush.item.image.shape[:2]).numpy()
        rows, cols = np.nonzero(truth == RED)
        brush.event_generate("<KeyPress-m>")  # the rectangle tool
        _drag(brush, [(cols.min() + 0.2, rows.min() + 0.2), (cols.max() + 0.8, rows.max() + 0.8)])
        assert (brush.mask == RED).sum() >= len(rows)
        painted.append(brush.item.relpath)
    return painted


def test_a_newcomer_walks_the_correction_loop_without_an_error(tk_root, tmp_path, mini_demo, record_property):
    walk = Walk()
    sessions = tmp_path / "sessions"
    window = _make_window(tk_root, sessions, mini_demo)
    walk.listen(window)
    errors = _watch_errors(window)
    form = window.settings.vars
    for key, value in (("epochs", "3"), ("feedback_every", "1"), ("images_per_round", "3"), ("model", "small_cnn")):
        form[key].set(value)
    try:
        # demo: Train on a blank data folder, the brush window opens after epoch 1
        window.train_button.invoke()
        wait_until(window, lambda: window.brush_window is not None, 180)
        brush = window.brush_window
        wait_until(brush, lambda: brush.winfo_viewable() and brush.fit is not None, 20)
        walk.done("demo: train epoch 1, brush window open")

        painted = _paint_swatches(brush, mini_demo, 3)
        walk.done("paint 3 images")

        panel = brush.propagation
        assert panel.scope == "content"
        panel.preview_button.invoke()
        wait_until(window, lambda: panel.content_window is not None and panel.content_window.preview is not None, 180)
        preview = panel.content_window
        first = preview.preview
        assert first.corrections == 0 and set(first.learned_from) == set(painted)
        assert panel.preview_button.instate(["!disabled"])  # the panel came back (issue 21, item 2)
        walk.done("Preview")

        wrong = preview.items[0].relpath
        preview.not_this_buttons[wrong].invoke()
        walk.done("Not this")

        preview.rerun_button.invoke()
        assert preview.apply_button.instate(["disabled"])  # no applying the old answer meanwhile
        wait_until(window, lambda: preview.busy is None and preview.preview is not first, 180)
        second = preview.preview
        assert second.corrections == 1 and wrong not in second.relpaths  # it learnt from it
        assert "1 'not this' correction" in preview.summary_label.cget("text")
        walk.done("Preview again (learns)")

        kept = preview.choices.kept(second)
        events_before_apply = len(walk.events)
        preview.apply_button.invoke()
        wait_until(window, lambda: "PropagationApplied" in window.event_counts, 120)
        applied = walk.of(msg.PropagationApplied)[-1]
        assert not applied.searched and applied.written == kept  # the reviewed plan, as reviewed
        stages = {e.stage for e in walk.events[events_before_apply:] if isinstance(e, msg.PropagationProgress)}
        assert "finding" not in stages
        assert panel.content_window is None  # closed once its plan was written
        walk.done("Apply (no second search)")

        brush.done_button.invoke()
        wait_until(window, lambda: window.chooser_window is not None, 300)
        walk.done("Done -> chooser")

        chooser = window.chooser_window
        chooser.commit_button.invoke()
        if chooser.confirm is not None:  # a WORSE round asks first; the newcomer commits anyway
            chooser.confirm.yes_button.invoke()
        assert chooser.result == "commit"
        wait_until(window, lambda: "RoundDecided" in window.event_counts, 60)
        walk.done("Commit")

        window.stop_button.invoke()
        if window.stop_dialog is not None and window.stop_dialog.winfo_exists():
            window.stop_dialog.yes_button.invoke()  # the next round's brush window was open
        wait_until(window, lambda: window.finished is not None, 120)
        assert window.finished.stopped
        session_folder = Path(window.session.folder)
        walk.done("Stop")

        batches = window.event_counts["BatchFinished"]
        assert window.train_button.invoke() is not False
        wait_until(window, lambda: window.event_counts["BatchFinished"] > batches, 120)
        assert Path(window.session.folder) == session_folder  # Train continued the session
        assert any(line.endswith("Painted 3 images; fine-tuning...") for line in window.log.lines())
        walk.done("Train (continues)")

        window.on_close()
        wait_until(tk_root, lambda: window.closed, 120)  # the window itself is gone then
        walk.done("close")
        assert errors == []

        again = _make_window(tk_root, sessions, mini_demo)
        reopened_errors = _watch_errors(again)
        try:
            assert again.session is not None and Path(again.session.folder) == session_folder
            assert any(line.startswith(f"Opened session {session_folder}") for line in again.log.lines())
            assert reopened_errors == [] and "error" not in again.log.text.tag_names("1.0")
        finally:
            again.teardown()
        walk.done("reopen (same session)")
    finally:
        if not window.closed:
            if window.trainer is not None:
                window.trainer.stop()
            if window.thread is not None:
                window.thread.join(timeout=30)
            window.teardown()
        table = "\n".join(f"  {step:40s} {seconds:6.1f} s" for step, seconds in walk.times.items())
        print(f"\nnewcomer walk, time per step:\n{table}")
        for step, seconds in walk.times.items():
            record_property(step, round(seconds, 2))
