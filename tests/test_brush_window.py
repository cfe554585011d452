"""The brush window under a virtual X display, driven by real Tk events (and xdotool).

Images are 16 x 16, so with the canvas at 320 screen pixels every image pixel is a 20 x 20
square; the points below are image pixel centres, exact after the canvas round trip.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from app.run.messages import FeedbackItem
from datasets.masks import GREEN, RED, MaskStore, read_mask, read_mask_array, write_mask
from ui.helpers.geometry import to_canvas

pytestmark = pytest.mark.gui

SIDE = 16


def _item(relpath: str, seed: int, mask=None) -> FeedbackItem:
    rng = np.random.default_rng(seed)
    return FeedbackItem(
        relpath=relpath,
        image=rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8),
        saliency=rng.random((8, 8)).astype(np.float32),
        true_label="3",
        predicted_label="8" if seed else "3",
        confidence=0.75,
        mask=mask,
        reason="misclassified" if seed else "entropy 1.92",
    )


@pytest.fixture
def store(tmp_path):
    return MaskStore(tmp_path / "masks")


@pytest.fixture
def make_window(tk_root, store):
    """Build a BrushWindow on two 16x16 items; returns (window, calls)."""
    from ui.brush.window import BrushWindow

    made = []

    def make(items=None, **kwargs):
        calls = {"done": [], "cancel": 0}

        def on_cancel():
            calls["cancel"] += 1

        window = BrushWindow(
            tk_root,
            items or [_item("a/one.png", 0), _item("b/two.jpg", 1)],
            store,
            round_number=2,
            on_done=calls["done"].append,
            on_cancel=on_cancel,
            canvas_size=320,
            **kwargs,
        )
        window.geometry("+0+0")
        window.update()
        window.canvas.focus_force()
        window.update()
        made.append(window)
        return window, calls

    yield make
    for window in made:
        if window.winfo_exists():
            window.destroy()


def _xy(window, col, row):
    """Canvas point of the centre of image pixel (col, row)."""
    x, y = to_canvas(window.fit, col + 0.5, row + 0.5)
    return int(round(x)), int(round(y))


def _stroke(window, *pixels):
    """Press at the first pixel centre, drag through the others, release at the last."""
    canvas = window.canvas
    x, y = _xy(window, *pixels[0])
    canvas.event_generate("<ButtonPress-1>", x=x, y=y)
    window.update()
    for pixel in pixels[1:]:
        x, y = _xy(window, *pixel)
        canvas.event_generate("<B1-Motion>", x=x, y=y)
        window.update()
    canvas.event_generate("<ButtonRelease-1>", x=x, y=y)
    window.update()


def _key(window, keysym, **kwargs):
    window.canvas.event_generate(f"<{keysym}>", **kwargs)
    window.update()


def _saved(store, relpath):
    return read_mask_array(store.path_for(relpath))


def _pixels(mask, value):
    return sorted(map(tuple, np.argwhere(mask == value).tolist()))


def test_window_shows_the_item(make_window):
    window, _ = make_window()
    assert window.title() == "Paint feedback — round 2"
    assert window.counter_label.cget("text") == "Image 1 of 2"
    assert window.path_label.cget("text") == "a/one.png"
    assert window.true_label.cget("text") == "True label: 3"
    assert window.predicted_label.cget("text") == "Predicted: 3 (75%)"
    assert window.reason_label.cget("text") == "Chosen: entropy 1.92"
    assert window.fit.scale == 20 and window.mask.shape == (SIDE, SIDE)
    assert window.prev_button.instate(["disabled"]) and not window.next_button.instate(["disabled"])
    assert "Red brush" in window.status_label.cget("text")


def test_red_stroke_is_saved_exactly_where_it_went(make_window, store):
    window, _ = make_window()
    window.set_radius(1)
    _stroke(window, (2, 3), (6, 3), (9, 3))  # a horizontal line in row 3, cols 2..9
    expected = np.zeros((SIDE, SIDE), np.int8)
    expected[3, 1:11] = RED  # the line plus one pixel at each end (radius 1)
    expected[2, 2:10] = expected[4, 2:10] = RED  # the rows above and below
    assert np.array_equal(window.mask, expected)
    assert window.autosaver.flush(10)  # every finished stroke is written in the background
    assert np.array_equal(_saved(store, "a/one.png"), expected)
    # What a person sees: the displayed photo is tinted red on the stroke, untouched elsewhere.
    red_px = window.tk.call(
        str(window._photo), "get", *[v - o for v, o in zip(_xy(window, 5, 3), (window.fit.offset_x, window.fit.offset_y))]
    )
    plain_px = window.render.base[int(window.fit.scale * 8.5), int(window.fit.scale * 8.5)]
    assert int(red_px[0]) > int(red_px[1]) and int(red_px[0]) > int(red_px[2])
    assert list(map(int, window.tk.call(str(window._photo), "get", 170, 170))) == plain_px.tolist()

    window.next_button.invoke()
    window.update()
    assert window.counter_label.cget("text") == "Image 2 of 2"
    assert np.array_equal(_saved(store, "a/one.png"), expected)
    assert read_mask(store.path_for("a/one.png")).eq(RED).sum() == expected.sum()
    assert not store.has("b/two.jpg")


def test_green_key_eraser_undo_and_redo(make_window, store):
    window, _ = make_window()
    window.set_radius(2)
    _key(window, "KeyPress-g")
    assert window.tool == "green"
    _stroke(window, (4, 4), (11, 11))
    green = window.mask.copy()
    assert set(np.unique(green)) == {0, GREEN} and green[4, 4] == green[11, 11] == GREEN
    _key(window, "KeyPress-e")
    window.set_radius(1)
    _stroke(window, (11, 11))
    erased = window.mask.copy()
    assert _pixels(green - erased, GREEN) == [(10, 11), (11, 10), (11, 11), (11, 12), (12, 11)]
    _key(window, "Control-z")
    assert np.array_equal(window.mask, green)
    _key(window, "Control-y")
    assert np.array_equal(window.mask, erased)
    window.undo_button.invoke()
    window.undo_button.invoke()
    assert not window.mask.any() and window.undo_button.instate(["disabled"])
    window.redo_button.invoke()
    assert np.array_equal(window.mask, green)
    _key(window, "KeyPress-r")
    assert window.tool == "red"
    window.done_button.invoke()
    assert np.array_equal(_saved(store, "a/one.png"), green)


def test_radius_keys_slider_and_cursor(make_window):
    window, _ = make_window()
    window.radius_scale.set(5)
    window.update()
    assert window.radius == 5
    _key(window, "KeyPress-bracketright")
    assert window.radius == 6
    _key(window, "KeyPress-bracketleft")
    _key(window, "KeyPress-bracketleft")
    assert window.radius == 4
    window.set_radius(20)
    _key(window, "KeyPress-bracketright")
    assert window.radius == 24  # a fifth of the radius per step from 10 up
    window.set_radius(500)
    assert window.radius == 80 and window.radius_scale.get() == 80
    for _ in range(3):
        _key(window, "KeyPress-bracketleft")
    window.set_radius(1)
    _key(window, "KeyPress-bracketleft")
    assert window.radius == 1
    assert "radius 1 px" in window.status_label.cget("text")
    # The cursor circle has the brush radius in screen pixels.
    window.set_radius(3)
    x, y = _xy(window, 8, 8)
    window.canvas.event_generate("<Motion>", x=x, y=y)
    window.update()
    left, top, right, bottom = window.canvas.coords(window._cursor_items[1])
    assert (right - left, bottom - top) == (120, 120)  # 2 x 3 image px x 20
    assert ((left + right) / 2, (top + bottom) / 2) == (x, y)


def test_fast_stroke_is_continuous(make_window):
    window, _ = make_window()
    window.set_radius(1)
    _stroke(window, (0, 0), (15, 15))  # one motion event across the whole image
    assert all(window.mask[i, i] == RED for i in range(SIDE))
    assert all(window.mask[i, i + 1] == RED for i in range(SIDE - 1))


def test_previous_and_next_save_and_keep_undo(make_window, store):
    window, _ = make_window()
    window.set_radius(1)
    _stroke(window, (1, 1))
    _key(window, "KeyPress-Right")
    assert window.index == 1 and store.has("a/one.png")
    _key(window, "KeyPress-g")
    _stroke(window, (14, 14))
    _key(window, "KeyPress-Left")
    assert window.index == 0
    assert _pixels(_saved(store, "b/two.jpg"), GREEN) == [(13, 14), (14, 13), (14, 14), (14, 15), (15, 14)]
    assert window.undo_button.instate(["!disabled"])  # the stroke of the first visit
    _key(window, "Control-z")
    assert not window.mask.any()
    window.next_button.invoke()
    assert not store.has("a/one.png")  # emptied by undo: the stored mask is deleted
    mtime = store.path_for("b/two.jpg").stat().st_mtime_ns
    window.prev_button.invoke()  # nothing changed on image 2: not rewritten
    assert store.path_for("b/two.jpg").stat().st_mtime_ns == mtime


def test_done_reports_painted_relpaths_and_closes(make_window, store):
    window, calls = make_window()
    _stroke(window, (5, 5))
    window.next_button.invoke()  # image 2 left unpainted
    window.done_button.invoke()
    assert window.result == ("done", ("a/one.png",))
    assert calls == {"done": [("a/one.png",)], "cancel": 0}
    assert not window.winfo_exists()
    assert store.annotated() == ["a/one.png"]


def test_done_saves_the_image_on_screen(make_window, store):
    window, calls = make_window()
    window.next_button.invoke()
    _stroke(window, (2, 2))
    window.done_button.invoke()
    assert window.result == ("done", ("b/two.jpg",)) and calls["done"] == [("b/two.jpg",)]
    assert _saved(store, "b/two.jpg")[2, 2] == RED


def test_cancel_by_escape_or_close_button_still_saves(make_window, store):
    window, calls = make_window()
    _stroke(window, (7, 7))
    _key(window, "KeyPress-Escape")
    assert window.result == ("cancel", ()) and calls == {"done": [], "cancel": 1}
    assert _saved(store, "a/one.png")[7, 7] == RED

    window, calls = make_window()
    window.next_button.invoke()
    _stroke(window, (3, 3))
    window.tk.eval(window.protocol("WM_DELETE_WINDOW"))  # what the window manager's X does
    assert window.result == ("cancel", ()) and calls["cancel"] == 1
    assert _saved(store, "b/two.jpg")[3, 3] == RED and store.has("a/one.png")


def test_existing_mask_is_loaded_kept_by_skip_and_deleted_by_clear(make_window, store):
    earlier = np.zeros((8, 8), np.int8)  # stored at another size: shown upscaled (nearest)
    earlier[0, 0] = RED
    earlier[7, 7] = GREEN
    write_mask(store.path_for("a/one.png"), earlier)
    before = store.path_for("a/one.png").read_bytes()
    window, calls = make_window()
    assert _pixels(window.mask, RED) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert _pixels(window.mask, GREEN) == [(14, 14), (14, 15), (15, 14), (15, 15)]
    assert "has a saved mask" in window.mask_label.cget("text")
    _key(window, "KeyPress-s")  # skip: move on, the stored mask stays as it was
    assert window.index == 1 and store.path_for("a/one.png").read_bytes() == before
    assert window.skip_button.cget("text") == "Skip & finish"
    window.prev_button.invoke()
    _key(window, "KeyPress-Delete")  # clear (undoable)
    assert not window.mask.any()
    window.skip_button.invoke()
    assert not store.has("a/one.png")  # the user cleared it: skip deletes it
    window.skip_button.invoke()  # the last image: skip finishes the round
    assert window.result == ("done", ()) and calls["done"] == [()]


def test_item_mask_is_the_starting_point(make_window, store):
    start = np.zeros((SIDE, SIDE), np.int8)
    start[5:7, 5:7] = GREEN
    window, _ = make_window([_item("a/one.png", 0, mask=start), _item("b/two.jpg", 1)])
    assert np.array_equal(window.mask, start)
    window.next_button.invoke()  # differs from the (empty) store: written
    assert np.array_equal(_saved(store, "a/one.png"), start)


def test_heatmap_toggle_and_opacity(make_window):
    window, _ = make_window()
    image = window.item.image
    shown = window.render.composite[10, 10]  # display pixel inside image pixel (0, 0)
    assert shown.tolist() != image[0, 0].tolist()  # the heatmap is laid over
    _key(window, "KeyPress-h")
    assert not window.show_heatmap_var.get()
    assert window.render.composite[10, 10].tolist() == image[0, 0].tolist()
    _key(window, "KeyPress-h")
    window.opacity_scale.set(0)
    window.update()
    assert window.render.composite[10, 10].tolist() == image[0, 0].tolist()
    window.opacity_scale.set(100)
    window.update()
    assert window.render.composite[10, 10].tolist() == window.render.heat[10, 10].tolist()


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="needs xdotool")
def test_real_pointer_stroke_with_xdotool(make_window, store):
    """The X server's own pointer events (not event_generate) paint the mask."""
    window, _ = make_window()
    window.set_radius(1)
    window.lift()
    window.update()
    root_x, root_y = window.canvas.winfo_rootx(), window.canvas.winfo_rooty()

    def screen(col, row):
        x, y = _xy(window, col, row)
        return str(root_x + x), str(root_y + y)

    subprocess.run(
        [
            "xdotool",
            "mousemove",
            *screen(2, 12),
            "mousedown",
            "1",
            "mousemove",
            *screen(8, 12),
            "mousemove",
            *screen(13, 12),
            "mouseup",
            "1",
        ],
        check=True,
        timeout=10,
    )
    for _ in range(100):  # let Tk read the X events (a second at most)
        time.sleep(0.01)
        window.update()
        if not window.paint_round.drawing and window.mask.any():
            break
    assert window.mask[12, 2:14].tolist() == [RED] * 12
    assert window.mask[12, 0] == 0 and window.mask[0].sum() == 0
    window.done_button.invoke()
    assert _saved(store, "a/one.png")[12, 2:14].tolist() == [RED] * 12


def test_destroyed_from_outside_still_saves(make_window, store):
    window, calls = make_window()
    _stroke(window, (9, 9))
    window.destroy()  # e.g. the main window closing mid-round
    assert _saved(store, "a/one.png")[9, 9] == RED
    assert window.result is None and calls == {"done": [], "cancel": 0}


def test_unreadable_stored_mask_is_replaced_by_new_paint(make_window, store):
    broken = store.path_for("a/one.png")
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a png")
    window, _ = make_window()
    assert not window.mask.any()
    _stroke(window, (4, 4))
    window.done_button.invoke()
    assert _saved(store, "a/one.png")[4, 4] == RED


# ----------------------------------------------------------------------------- autosave
def test_each_stroke_undo_and_clear_is_saved_without_leaving_the_image(make_window, store):
    window, _ = make_window()
    window.set_radius(1)
    _stroke(window, (3, 3))
    assert window.autosaver.flush(10) and _saved(store, "a/one.png")[3, 3] == RED
    _stroke(window, (10, 10))
    assert window.autosaver.flush(10) and _saved(store, "a/one.png")[10, 10] == RED
    _key(window, "Control-z")
    assert window.autosaver.flush(10)
    assert _saved(store, "a/one.png")[10, 10] == 0 and _saved(store, "a/one.png")[3, 3] == RED
    _key(window, "Delete")
    assert window.autosaver.flush(10) and not store.has("a/one.png")  # cleared: file deleted
    wait = time.monotonic() + 5
    while "saved" not in window.status_label.cget("text") and time.monotonic() < wait:
        window.update()
        time.sleep(0.02)
    assert window.status_label.cget("text").endswith("· saved")


class _BrokenStore(MaskStore):
    """A store whose disk is full."""

    def save(self, relpath, mask, meta=None):
        raise OSError(28, "No space left on device")


def test_a_failed_autosave_is_shown_at_once_and_on_leaving(tk_root, tmp_path, monkeypatch):
    from ui.brush import window as module

    shown = []
    monkeypatch.setattr(module.messagebox, "showerror", lambda title, text, **_: shown.append(text))
    failures = []
    window = module.BrushWindow(
        tk_root,
        [_item("a/one.png", 0), _item("b/two.jpg", 1)],
        _BrokenStore(tmp_path / "m"),
        canvas_size=320,
        on_save_failed=failures.append,
    )
    window.update()
    _stroke(window, (5, 5))
    assert window.autosaver.flush(10)
    deadline = time.monotonic() + 5
    while "NOT SAVED" not in window.status_label.cget("text") and time.monotonic() < deadline:
        window.update()
        time.sleep(0.02)
    assert "NOT SAVED: [Errno 28] No space left on device" in window.status_label.cget("text")
    window.next_button.invoke()  # leaving retries, then says so and stays on the image
    assert window.index == 0
    assert shown and "No space left on device" in shown[0]
    window.destroy()  # closed from outside (the app quitting): no dialog, but the callback
    assert failures and "a/one.png could not be saved" in failures[0]


CRASH_APP = Path(__file__).with_name("brush_crash_app.py")


def test_kill_9_while_painting_loses_at_most_the_stroke_in_progress(x_display, tmp_path):
    """A real Tk app under Xvfb, painted with xdotool, killed with SIGKILL mid-stroke."""
    import json
    import os
    import signal
    import sys

    masks = tmp_path / "masks"
    proc = subprocess.Popen(
        [sys.executable, str(CRASH_APP), str(masks)], stdout=subprocess.PIPE, text=True, env=dict(os.environ, DISPLAY=x_display)
    )
    try:
        info = json.loads(proc.stdout.readline())  # the canvas' screen origin and scale
        scale, (left, top) = info["scale"], info["origin"]

        def at(col, row):
            return [str(int(left + (col + 0.5) * scale)), str(int(top + (row + 0.5) * scale))]

        def xdo(*args):
            subprocess.run(["xdotool", *args], check=True, timeout=10)

        for row in (2, 6, 10):  # three finished strokes
            xdo("mousemove", *at(2, row), "mousedown", "1", "mousemove", *at(8, row), "mousemove", *at(13, row), "mouseup", "1")
            time.sleep(0.3)
        xdo("mousemove", *at(2, 14), "mousedown", "1", "mousemove", *at(13, 14))  # in progress
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["xdotool", "mouseup", "1"], timeout=10)
    saved = read_mask_array(MaskStore(masks).path_for("a/one.png"))
    for row in (2, 6, 10):
        assert saved[row, 2:14].tolist() == [RED] * 12, row
    assert not saved[14].any()  # the stroke in progress is the only one lost
    assert not any(p.name.startswith(".") for p in masks.rglob("*"))  # no torn temp file


# ----------------------------------------------------------------------------- zoom, pan, tools
def _wheel(window, x, y, up=True, state=0):
    window.canvas.event_generate("<Button-4>" if up else "<Button-5>", x=x, y=y, state=state)
    window.update()


def test_ctrl_wheel_zooms_at_the_pointer_and_painting_lands_on_the_right_pixel(make_window, store):
    window, _ = make_window()
    window.set_radius(1)
    x, y = _xy(window, 12, 4)
    _wheel(window, x, y, state=0x0004)  # Ctrl+wheel
    _wheel(window, x, y, state=0x0004)
    assert window.view.zoom == pytest.approx(1.5625)
    assert window.fit.scale == pytest.approx(20 * 1.5625)
    new_x, new_y = _xy(window, 12, 4)
    assert abs(new_x - x) <= 1 and abs(new_y - y) <= 1  # the pixel stayed under the pointer
    assert window.zoom_label.cget("text").startswith("156 %")
    _stroke(window, (12, 4))
    assert window.mask[4, 12] == RED and 3 <= window.mask.sum() <= 5  # a radius-1 disc there
    _key(window, "KeyPress-0")
    assert window.view.zoom == 1.0 and window.fit.scale == 20
    _key(window, "KeyPress-plus")
    _key(window, "KeyPress-plus")
    assert window.view.zoom == pytest.approx(1.5625)
    _key(window, "KeyPress-minus")
    assert window.view.zoom == pytest.approx(1.25)


def test_space_drag_and_the_wheel_pan_a_zoomed_image(make_window):
    window, _ = make_window()
    for _ in range(4):
        _key(window, "KeyPress-plus")
    before = window.fit.offset_x, window.fit.offset_y
    _key(window, "KeyPress-space")
    canvas = window.canvas
    canvas.event_generate("<ButtonPress-1>", x=100, y=100)
    canvas.event_generate("<B1-Motion>", x=140, y=120)
    canvas.event_generate("<ButtonRelease-1>", x=140, y=120)
    window.event_generate("<KeyRelease-space>")
    window.update()
    assert (window.fit.offset_x, window.fit.offset_y) == (before[0] + 40, before[1] + 20)
    assert not window.mask.any()  # panning never paints
    offset_y = window.fit.offset_y
    _wheel(window, 100, 100, up=False)  # plain wheel: pan up and down
    assert window.fit.offset_y == offset_y - 40
    canvas.event_generate("<ButtonPress-2>", x=100, y=100)  # middle drag pans too
    canvas.event_generate("<B2-Motion>", x=90, y=100)
    canvas.event_generate("<ButtonRelease-2>", x=90, y=100)
    window.update()
    assert window.fit.offset_x == before[0] + 30


def test_rectangle_lasso_and_fill_tools(make_window, store):
    window, _ = make_window()
    _key(window, "KeyPress-m")
    assert window.shape == "rectangle"
    _stroke(window, (2, 2), (4, 3), (6, 5))  # drag from pixel (2,2) to pixel (6,5)
    expected = np.zeros((SIDE, SIDE), bool)
    expected[2:6, 2:7] = True
    assert np.array_equal(window.mask == RED, expected)
    assert "Red rectangle (discourage)" in window.status_label.cget("text")
    _key(window, "KeyPress-g")
    _key(window, "KeyPress-l")  # a lasso around the lower right corner
    _stroke(window, (9, 9), (14, 9), (14, 14), (9, 14))
    assert (window.mask[10:14, 10:14] == GREEN).all() and window.mask[0, 15] == 0
    _key(window, "KeyPress-e")
    _key(window, "KeyPress-f")  # fill with the eraser: the green region goes
    _stroke(window, (12, 12))
    assert not (window.mask == GREEN).any() and (window.mask == RED).sum() == 20
    _key(window, "Control-z")
    assert (window.mask == GREEN).any()
    assert window.autosaver.flush(10)
    assert np.array_equal(_saved(store, "a/one.png"), window.mask)


def test_paint_opacity_and_a_faint_heatmap_by_default(make_window):
    from ui.brush.window import DEFAULT_OPACITY

    window, _ = make_window()
    assert window.opacity_var.get() == DEFAULT_OPACITY <= 25
    _stroke(window, (8, 8))
    point = [v - o for v, o in zip(_xy(window, 8, 8), (window.fit.offset_x, window.fit.offset_y))]

    def red_at():
        window._refresh()
        return int(window.tk.call(str(window._photo), "get", *point)[0])

    window.paint_opacity_var.set(100)
    window._render_all()
    strong = red_at()
    window.paint_opacity_var.set(20)
    window._render_all()
    assert red_at() < strong == 255


def test_the_selected_eraser_looks_selected(make_window):
    """Issue 21: the selected Eraser looked unselected (its fill was the buttons' grey)."""
    window, _ = make_window()
    eraser = window.tool_buttons["eraser"]
    background = window.winfo_rgb(eraser.cget("background"))
    assert window.winfo_rgb(eraser.cget("selectcolor")) != background
    assert "bold" in str(window.tool_buttons["red"].cget("font"))  # the start tool
    _key(window, "KeyPress-e")
    assert window.tool == "eraser"
    assert "bold" in str(eraser.cget("font")) and "bold" not in str(window.tool_buttons["red"].cget("font"))


def test_done_is_in_view_without_scrolling(make_window):
    """Issue 21: Done needed scrolling even at 1600 x 1000; it lies below the scrolled panel."""
    window, _ = make_window()
    window.update()
    done = window.done_button
    assert done.winfo_viewable()
    top = window.winfo_rooty()
    assert top <= done.winfo_rooty() and done.winfo_rooty() + done.winfo_height() <= top + window.winfo_height()
    assert not str(done).startswith(str(window.side_scroll))  # not inside the scrolled panel
