"""The reasonability window shows a ReasonabilityReady's matrix; the main window enables its
button once one arrived. Tk tests on a virtual display."""

from __future__ import annotations

import pytest

from app.explain.reasonability import ReasonabilityMatrix, ReasonabilityThresholds
from app.run import messages as msg

pytestmark = pytest.mark.gui


def _event(round_number=1, n_train=40):
    matrix = ReasonabilityMatrix(
        counts={"accurate_reasonable": 5, "accurate_unreasonable": 3, "inaccurate_reasonable": 0, "inaccurate_unreasonable": 2},
        members={
            "accurate_reasonable": ("1/a.png", "1/b.png", "2/c.png", "2/d.png", "3/e.png"),
            "accurate_unreasonable": ("4/f.png", "4/g.png"),  # one more than listed
            "inaccurate_reasonable": (),
            "inaccurate_unreasonable": ("5/h.png", "6/i.png"),
        },
        judged_by_mask=("4/f.png",),
        thresholds=ReasonabilityThresholds(red_share=0.25, green_lift=1.5, score=0.6),
    )
    return msg.ReasonabilityReady(round_number, 4, matrix, n_train)


def test_window_shows_counts_shares_and_images(tk_root):
    from ui.windows.reasonability_window import ReasonabilityWindow

    window = ReasonabilityWindow(tk_root, _event())
    window.update()
    counts = {cell: label.cget("text") for cell, label in window.count_labels.items()}
    assert counts == {
        "accurate_reasonable": "5",
        "accurate_unreasonable": "3",
        "inaccurate_reasonable": "0",
        "inaccurate_unreasonable": "2",
    }
    shares = {cell: label.cget("text") for cell, label in window.share_labels.items()}
    assert shares["accurate_reasonable"] == "50% of the images"
    assert shares["accurate_unreasonable"] == "30% of the images"
    assert shares["inaccurate_reasonable"] == "0% of the images"
    assert window.lists["accurate_unreasonable"].get(0, "end") == ("4/f.png", "4/g.png")
    assert window.more_labels["accurate_unreasonable"].cget("text") == "... and 1 more"
    assert window.more_labels["accurate_reasonable"].cget("text") == ""
    assert window.lists["inaccurate_reasonable"].size() == 0
    assert window.pool_label.cget("text").startswith("10 of 40 training images judged (a random sample)")
    rule = window.rule_label.cget("text")
    assert "under 25% of the saliency on red" in rule and "on green 1.5x its area or more" in rule
    assert "score under 60%" in rule
    assert window.judged_label.cget("text").startswith("1 image judged against their own mask")
    assert window.title() == "Reasonability of explanations — round 1"
    window.destroy()


def test_main_window_button_enabled_after_reasonability_ready(tk_root, tmp_path):
    from ui.main_window.window import MainWindow

    window = MainWindow(tk_root, sessions_root=str(tmp_path / "sessions"), destroy_root_on_close=False)
    try:
        assert window.reasonability_button.instate(["disabled"])
        assert window.on_reasonability() is None
        window.handle_event(_event())
        assert window.reasonability_button.instate(["!disabled"])
        shown = window.on_reasonability()
        tk_root.update()
        assert shown.count_labels["accurate_unreasonable"].cget("text") == "3"
        # a newer matrix refreshes the open window
        newer = _event(round_number=2)
        window.handle_event(newer)
        assert shown.event is newer and shown.title().endswith("round 2")
        assert window.on_reasonability() is shown  # one window, raised again
        window.on_new_session()
        assert window.reasonability_button.instate(["disabled"])
    finally:
        window.teardown()


def test_the_window_reopens_at_the_size_the_user_left_it(tk_root, tmp_path):
    import json

    from ui.helpers.window_geometry import GeometryStore
    from ui.windows.reasonability_window import ReasonabilityWindow

    store = GeometryStore(tmp_path / "windows.json")
    first = ReasonabilityWindow(tk_root, _event(), geometry_store=store)
    first.geometry("820x600+10+10")  # the user resizes it
    tk_root.update()
    first.destroy()
    assert json.loads((tmp_path / "windows.json").read_text())["reasonability"].startswith("820x600")
    second = ReasonabilityWindow(tk_root, _event(), geometry_store=store)
    tk_root.update()
    assert second.winfo_width() == 820 and second.winfo_height() == 600
    second.destroy()
