"""Opening and closing the windows around feedback rounds, in a real Tk: closing saves the
brush window's paint, and windows the user (or Tk) already closed are no error."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

import pytest
from test_reasonability_window import _event as reasonability_event

from ui.main_window.round_windows import RoundWindows
from ui.tk_support.quiet_teardown import destroy, exists, quietly

pytestmark = pytest.mark.gui


class FakeBrush(tk.Toplevel):
    """A brush window's surface as RoundWindows uses it: `cancel` saves the paint."""

    def __init__(self, master):
        super().__init__(master)
        self.cancelled = 0
        self.propagation = ttk.Frame(self)

    def cancel(self):
        self.cancelled += 1


def test_closing_a_round_saves_the_paint_and_skips_windows_already_gone(tk_root):
    rounds = RoundWindows(tk_root)
    brush = rounds.brush = FakeBrush(tk_root)
    chooser = rounds.chooser = tk.Toplevel(tk_root)
    gallery = rounds.gallery = tk.Toplevel(tk_root)
    gallery.destroy()  # closed by the user a moment ago
    assert rounds.brush_is_open()
    rounds.close_round()
    assert brush.cancelled == 1
    assert not exists(brush) and not exists(chooser)
    assert (rounds.brush, rounds.chooser, rounds.gallery) == (None, None, None)
    rounds.close_round()  # twice: nothing left to close
    assert not rounds.brush_is_open()


def test_the_propagation_panel_is_found_only_while_the_brush_window_is_up(tk_root):
    rounds = RoundWindows(tk_root)
    assert rounds.propagation_panel() is None
    brush = rounds.brush = FakeBrush(tk_root)
    assert rounds.propagation_panel() is brush.propagation
    brush.destroy()
    assert rounds.propagation_panel() is None


def test_one_reasonability_window_refreshed_and_reopened_after_it_was_closed(tk_root):
    rounds = RoundWindows(tk_root)
    painted = []
    first = rounds.show_reasonability(reasonability_event(), painted.append)
    newer = reasonability_event(round_number=2)
    rounds.refresh_reasonability(newer)
    assert first.event is newer
    assert rounds.show_reasonability(newer, painted.append) is first  # raised, not a second one
    first.destroy()  # the user closed it
    rounds.refresh_reasonability(reasonability_event(round_number=3))  # no error
    second = rounds.show_reasonability(newer, painted.append)
    assert second is not first and exists(second)
    rounds.close_all()
    assert not exists(second) and rounds.reasonability is None


def test_the_quiet_helpers_swallow_only_a_widget_that_is_gone(tk_root):
    label = ttk.Label(tk_root, text="x")
    assert quietly(label.configure, {"text": "y"}) and label.cget("text") == "y"
    label.destroy()
    assert quietly(label.configure, {"text": "z"}) is False
    destroy(label, None)  # already gone, and nothing: no error
    assert not exists(label) and not exists(None)
    with pytest.raises(ZeroDivisionError):
        quietly(lambda: 1 / 0)  # other errors are bugs, not teardown
