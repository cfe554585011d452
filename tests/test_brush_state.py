"""The brush window's round state and save policy (`ui.brush.state`), without a display.

Images are 16 x 16; masks are written by a real `MaskStore` under tmp_path, and the store
records every save and delete, so "not written" is checked, not assumed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.run.messages import FeedbackItem
from datasets.masks import GREEN, RED, MaskStore, write_mask
from ui.brush.state import PaintRound, as_rgb
from ui.brush.strokes import ERASE

SIDE = 16


def _item(relpath: str, seed: int, mask=None) -> FeedbackItem:
    rng = np.random.default_rng(seed)
    return FeedbackItem(
        relpath=relpath,
        image=rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8),
        saliency=rng.random((8, 8)).astype(np.float32),
        true_label="3",
        predicted_label="8",
        confidence=0.75,
        mask=mask,
    )


class _RecordingStore(MaskStore):
    """A MaskStore that records the writes asked of it."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.calls = []

    def save(self, relpath, mask, meta=None):
        self.calls.append(("save", relpath))
        return super().save(relpath, mask, meta)

    def delete(self, relpath):
        self.calls.append(("delete", relpath))
        return super().delete(relpath)


class _FullDisk(MaskStore):
    def __init__(self, root) -> None:
        super().__init__(root)
        self.attempts = 0

    def save(self, relpath, mask, meta=None):
        self.attempts += 1
        raise OSError(28, "No space left on device")


@pytest.fixture
def store(tmp_path):
    return _RecordingStore(tmp_path / "masks")


@pytest.fixture
def make_round(store):
    made = []

    def make(items=None, masks=None):
        paint = PaintRound(items or [_item("a/one.png", 0), _item("b/two.jpg", 1)], masks or store)
        paint.go_to(0)
        made.append(paint)
        return paint

    yield make
    for paint in made:
        paint.close(5)


def _dot(paint: PaintRound, col: int, row: int, value: int = RED) -> None:
    """A click of a radius-0 brush: exactly pixel (col, row), one finished stroke."""
    paint.begin_stroke(col + 0.5, row + 0.5, 0, value)
    assert paint.end_stroke()


def _stored(store, relpath):
    return store.load_array(relpath)


def test_the_pure_modules_import_no_tkinter():
    code = "import sys, ui.brush.state, ui.brush.render, ui.brush.tools\nassert 'tkinter' not in sys.modules\nprint('clean')"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(root))
    assert result.returncode == 0, result.stderr
    assert "clean" in result.stdout


def test_no_items_is_an_error(store):
    with pytest.raises(ValueError, match="at least one image"):
        PaintRound([], store)


def test_a_mask_is_image_sized_int8_and_starts_empty(make_round):
    paint = make_round()
    assert paint.mask.shape == (SIDE, SIDE) and paint.mask.dtype == np.int8
    assert not paint.mask.any() and paint.paint_counts() == (0, 0)
    assert paint.image.shape == (SIDE, SIDE, 3) and paint.image.dtype == np.uint8


def test_an_image_only_looked_at_is_never_written(make_round, store):
    paint = make_round()
    assert paint.leave() is None
    paint.go_to(1)
    assert paint.leave() is None
    paint.go_to(0)
    assert paint.leave() is None
    assert store.calls == [] and paint.annotated() == ()
    assert paint.result(done=True) == ("done", ())


def test_a_finished_stroke_is_written_at_once_and_only_once(make_round, store):
    paint = make_round()
    paint.begin_stroke(3.5, 3.5, 1, RED)
    paint.extend_stroke(8.5, 3.5)
    assert paint.drawing and paint.autosaver.idle  # nothing written mid-stroke
    assert store.calls == []
    assert paint.end_stroke() and not paint.drawing
    assert paint.autosaver.flush(10)
    assert store.calls == [("save", "a/one.png")]
    assert np.array_equal(_stored(store, "a/one.png"), paint.mask)
    assert paint.mask[3, 3:9].tolist() == [RED] * 6 and paint.paint_counts()[0] == paint.mask.sum()
    assert paint.leave() is None  # unchanged since: not written again
    assert store.calls == [("save", "a/one.png")]
    assert paint.save_status() == (" · saved", False)


def test_leaving_finishes_a_stroke_under_way_and_saves_it(make_round, store):
    paint = make_round()
    paint.begin_stroke(5.5, 5.5, 0, GREEN)
    assert paint.leave() is None and not paint.drawing
    assert _stored(store, "a/one.png")[5, 5] == GREEN


def test_undo_redo_and_clear_are_saved_and_an_empty_mask_deletes_the_file(make_round, store):
    paint = make_round()
    _dot(paint, 2, 2)
    _dot(paint, 9, 9, GREEN)
    assert paint.undo() is not None
    assert paint.autosaver.flush(10)
    saved = _stored(store, "a/one.png")
    assert saved[9, 9] == 0 and saved[2, 2] == RED
    assert paint.redo() is not None and paint.autosaver.flush(10)
    assert _stored(store, "a/one.png")[9, 9] == GREEN
    assert paint.clear() is not None and paint.autosaver.flush(10)
    assert not store.has("a/one.png") and store.calls[-1] == ("delete", "a/one.png")
    assert paint.undo() is not None and paint.autosaver.flush(10)  # the clear is undone too
    assert _stored(store, "a/one.png")[9, 9] == GREEN
    assert paint.clear() is not None and paint.clear() is None  # nothing left to clear


def test_a_region_is_one_saved_undoable_edit(make_round, store):
    paint = make_round()
    region = np.zeros((SIDE, SIDE), bool)
    region[4:8, 4:8] = True
    box = paint.apply_region(region, RED)
    assert (box.left, box.top, box.right, box.bottom) == (4, 4, 8, 8)
    assert paint.autosaver.flush(10) and (_stored(store, "a/one.png") == RED).sum() == 16
    assert paint.apply_region(region, RED) is None  # already red: no edit
    assert paint.apply_region(region, ERASE) is not None and paint.history.undo_depth == 2
    assert paint.undo() is not None and (paint.mask == RED).sum() == 16


def test_undo_history_survives_moving_between_images(make_round, store):
    paint = make_round()
    _dot(paint, 1, 1)
    assert paint.leave() is None
    paint.go_to(1)
    _dot(paint, 14, 14, GREEN)
    assert paint.leave() is None
    paint.go_to(0)
    assert paint.mask[1, 1] == RED and paint.history.can_undo  # the stroke of the first visit
    assert paint.undo() is not None and not paint.mask.any()
    assert paint.leave() is None
    assert not store.has("a/one.png")  # emptied by undo: the stored mask is deleted
    saves_of_two = store.calls.count(("save", "b/two.jpg"))
    paint.go_to(1)
    assert paint.history.undo_depth == 1 and paint.mask[14, 14] == GREEN
    assert paint.leave() is None
    assert store.calls.count(("save", "b/two.jpg")) == saves_of_two  # unchanged: not rewritten
    assert paint.annotated() == ("b/two.jpg",)


def test_skip_keeps_an_earlier_mask_and_honours_a_clear(make_round, store):
    earlier = np.zeros((8, 8), np.int8)  # stored at another size: loaded upscaled (nearest)
    earlier[0, 0] = RED
    earlier[7, 7] = GREEN
    write_mask(store.path_for("a/one.png"), earlier)
    before = store.path_for("a/one.png").read_bytes()
    paint = make_round()
    assert paint.has_stored_mask()
    assert paint.paint_counts() == (4, 4) and paint.mask[:2, :2].tolist() == [[RED, RED], [RED, RED]]
    assert paint.leave() is None  # skip: leave without an edit
    assert store.path_for("a/one.png").read_bytes() == before and store.calls == []
    paint.go_to(1)
    paint.go_to(0)
    paint.clear()
    assert paint.leave() is None and not store.has("a/one.png")
    assert paint.result(done=True) == ("done", ())


def test_done_reports_the_rounds_images_with_a_stored_mask_in_order(make_round, store, tmp_path):
    items = [_item("a/one.png", 0), _item("b/two.jpg", 1), _item("c/three.png", 2)]
    store.save("c/three.png", np.ones((SIDE, SIDE), np.int8))  # painted in an earlier round
    store.save("z/other.png", np.ones((SIDE, SIDE), np.int8))  # not this round's
    paint = make_round(items)
    _dot(paint, 5, 5)
    assert paint.leave() is None
    paint.go_to(1)  # left unpainted
    assert paint.leave() is None
    assert paint.result(done=True) == ("done", ("a/one.png", "c/three.png"))


def test_cancel_returns_nothing_but_keeps_what_was_painted(make_round, store):
    paint = make_round()
    _dot(paint, 7, 7)
    assert paint.leave() is None
    assert paint.result(done=False) == ("cancel", ())
    assert paint.close(10)
    assert _stored(store, "a/one.png")[7, 7] == RED


def test_the_items_own_mask_is_the_starting_point_and_is_written_on_leaving(make_round, store):
    start = np.zeros((SIDE // 2, SIDE // 2), np.int8)  # resized to the image (nearest)
    start[2, 3] = GREEN
    paint = make_round([_item("a/one.png", 0, mask=start), _item("b/two.jpg", 1)])
    assert paint.paint_counts() == (0, 4) and paint.mask[4:6, 6:8].tolist() == [[GREEN, GREEN], [GREEN, GREEN]]
    assert store.calls == []  # not before leaving: the user may still change it
    assert paint.leave() is None  # differs from the (empty) store: written
    assert np.array_equal(_stored(store, "a/one.png"), paint.mask)


def test_an_unreadable_stored_mask_counts_as_none(make_round, store):
    broken = store.path_for("a/one.png")
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a png")
    paint = make_round()
    assert not paint.mask.any()
    _dot(paint, 4, 4)
    assert paint.leave() is None and _stored(store, "a/one.png")[4, 4] == RED


def test_a_failed_write_is_retried_on_leaving_then_reported(make_round, tmp_path):
    disk = _FullDisk(tmp_path / "full")
    paint = make_round(masks=disk)
    _dot(paint, 5, 5)
    assert paint.autosaver.flush(10) and disk.attempts == 1
    text, failed = paint.save_status()
    assert failed and text == " · NOT SAVED: [Errno 28] No space left on device"
    error = paint.leave()
    assert disk.attempts == 2  # the same mask, tried once more
    assert error == "[Errno 28] No space left on device"


def test_a_slow_write_is_reported_as_such(make_round, store, monkeypatch):
    paint = make_round()
    monkeypatch.setattr(paint.autosaver, "flush", lambda timeout=None: False)
    _dot(paint, 1, 1)
    assert paint.leave(timeout=3) == "writing it took longer than 3 s"


def test_go_to_checks_the_index(make_round):
    paint = make_round()
    paint.go_to(1)
    assert paint.index == 1 and paint.item.relpath == "b/two.jpg" and paint.is_last and not paint.is_first
    with pytest.raises(IndexError):
        paint.go_to(2)


def test_added_items_are_appended_once_and_the_first_is_named(make_round):
    paint = make_round()
    assert paint.add([]) == (0, None)
    assert paint.add([_item("b/two.jpg", 1), _item("c/three.png", 2), _item("c/three.png", 2)]) == (1, 1)
    assert [item.relpath for item in paint.items] == ["a/one.png", "b/two.jpg", "c/three.png"]
    assert paint.add([_item("d/four.png", 3), _item("a/one.png", 0)]) == (1, 3)
    assert len(paint.images) == len(paint.items) == 4
    paint.go_to(3)
    assert paint.mask.shape == (SIDE, SIDE) and paint.is_last


def test_propagation_source_needs_saved_red(make_round):
    paint = make_round()
    _dot(paint, 3, 3, GREEN)
    assert paint.leave() is None
    relpath, why = paint.propagation_source()
    assert relpath is None and why.startswith("Paint red on this image first")
    _dot(paint, 4, 4, RED)
    assert paint.leave() is None
    assert paint.propagation_source() == ("a/one.png", "")


def test_an_applied_propagation_reloads_the_images_the_user_has_not_changed(make_round, store):
    stale = np.zeros((SIDE, SIDE), np.int8)
    stale[0, 0] = GREEN  # what the item carried when the round began
    items = [_item("a/one.png", 0), _item("b/two.jpg", 1), _item("c/three.png", 2, mask=stale), _item("d/four.png", 3)]
    paint = make_round(items)
    paint.go_to(1)  # seen without a mask, left unchanged
    paint.go_to(3)
    _dot(paint, 1, 1, GREEN)  # changed here and saved when left
    assert paint.leave() is None
    paint.go_to(0)
    propagated = np.zeros((SIDE, SIDE), np.int8)
    propagated[12:, 12:] = RED
    for relpath in ("b/two.jpg", "c/three.png"):  # the trainer writes its propagated masks
        store.save(relpath, propagated, meta={"source": "propagated"})
    paint.propagation_applied(["b/two.jpg", "c/three.png", "d/four.png", "a/one.png"])
    paint.go_to(1)
    assert np.array_equal(paint.mask, propagated)  # reloaded from the store
    assert paint.leave() is None and store.meta("b/two.jpg")["source"] == "propagated"  # not rewritten
    paint.go_to(2)
    assert np.array_equal(paint.mask, propagated)  # the store, not the stale item.mask
    paint.go_to(3)
    assert paint.mask[1, 1] == GREEN and paint.paint_counts() == (0, 1)  # the user's saved paint (skipped by the trainer)


def test_an_applied_propagation_leaves_the_image_on_screen_alone(make_round, store):
    paint = make_round()
    _dot(paint, 2, 2)
    assert paint.autosaver.flush(10)
    store.save("a/one.png", np.ones((SIDE, SIDE), np.int8))  # as if propagated onto it
    paint.propagation_applied(["a/one.png"])
    assert paint.paint_counts() == (1, 0) and paint.history.can_undo


def test_as_rgb_takes_gray_rgb_and_rgba():
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert as_rgb(gray).shape == (2, 3, 3) and (as_rgb(gray)[..., 2] == gray).all()
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 3] = 255
    assert as_rgb(rgba).shape == (2, 3, 3) and as_rgb(rgba).flags.c_contiguous
    with pytest.raises(ValueError):
        as_rgb(np.zeros((2, 3, 2), np.uint8))
