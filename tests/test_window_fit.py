"""Every window fits a 1280 x 720 and a 1600 x 1000 screen: opened under a private Xvfb of that size, each
window lies on the screen and its must-see widgets (status lines, Done, Commit, the log)
are on screen too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

APP = Path(__file__).with_name("fit_check_app.py")


@pytest.fixture(params=[(1280, 720), (1600, 1000)], ids=["1280x720", "1600x1000"])
def small_display(request):
    """A private Xvfb of the screen size asked for, on a display number it picks itself
    (-displayfd), so it never lands on another test session's server. Yields (display, size)."""
    width, height = request.param
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("needs Xvfb")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        number = stream.readline().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb did not start")
    display = f":{number}"
    deadline = time.monotonic() + 15
    probe = "import tkinter; tkinter.Tk().destroy()"
    while (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, env=dict(os.environ, DISPLAY=display)).returncode != 0
    ):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("Xvfb did not start")
        time.sleep(0.2)
    yield display, (width, height)
    proc.terminate()
    proc.wait(timeout=10)


def test_every_window_fits_and_shows_its_must_see_widgets(small_display, tmp_path):
    """At 1280 x 720 and at 1600 x 1000 (issue 21: Done needed scrolling even there)."""
    display, (screen_w, screen_h) = small_display
    result = subprocess.run(
        [sys.executable, str(APP), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ, DISPLAY=display),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["screen"] == [screen_w, screen_h]
    problems = []
    for name, shown in report["windows"].items():
        x, y, width, height, _ = shown["window"]
        if x < 0 or y < 0 or x + width > screen_w or y + height > screen_h:
            problems.append(f"{name}: window {width}x{height}+{x}+{y} leaves the screen")
        for widget, (wx, wy, ww, wh, viewable) in shown["widgets"].items():
            if not viewable or wx < 0 or wy < 0 or wx + ww > screen_w or wy + wh > screen_h:
                problems.append(f"{name}.{widget}: {ww}x{wh}+{wx}+{wy} viewable={viewable}")
    assert not problems, "\n".join(problems)
    # the size of the main window is remembered for the next launch
    assert "main" in json.loads((tmp_path / "windows.json").read_text())


def test_a_short_scrollable_frame_scrolls_with_the_wheel_over_its_children(tk_root):
    from tkinter import ttk

    from ui.widgets.scrollable import ScrollableFrame

    frame = ScrollableFrame(tk_root)
    frame.pack(fill="both", expand=True)
    buttons = [ttk.Button(frame.body, text=f"button {i}") for i in range(40)]
    for button in buttons:
        button.pack(fill="x")
    tk_root.geometry("200x200+0+0")
    tk_root.update()
    assert frame.scrolls
    frame.canvas.event_generate("<Enter>")
    tk_root.update()
    buttons[2].event_generate("<Button-5>")  # the wheel over a child widget
    tk_root.update()
    assert frame.canvas.yview()[0] > 0
    frame.see(buttons[-1])
    assert frame.canvas.yview()[1] == pytest.approx(1.0, abs=0.05)
