"""PlotsPanel: CE and penalty apart, shortcut-broken validation, the round's star, outliers
clipped and labelled, legends outside the axes."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.gui


def test_loss_range_ignores_an_exploding_validation_loss():
    from ui.widgets.plots import loss_range

    assert loss_range([]) == 2.5
    assert loss_range([0.7, 0.6, 0.5, 1.1, 1.2]) == 2.5  # the default floor
    typical = [1.9, 1.7, 1.5, 1.2, 1.3, 1.4]
    assert loss_range(typical + [32.0, 61.0]) == pytest.approx(2.5)
    assert loss_range([4.0, 5.0, 6.0, 4.5]) == pytest.approx(6.0 * 1.25)
    assert loss_range([math.nan, math.inf, 3.0]) == pytest.approx(3.75)


def test_plots_show_ce_penalty_broken_validation_and_the_round_star(tk_root):
    from ui.widgets.plots import PlotsPanel

    panel = PlotsPanel(tk_root)
    panel.pack(fill="both", expand=True)
    tk_root.geometry("900x560")
    tk_root.update()
    panel.set_run_range(4)
    panel.add_batch(1, 1, 2, loss=3.01, accuracy=0.5, ce=1.87)
    panel.add_epoch(1, {"loss": 1.9, "ce": 1.9, "accuracy": 0.4}, {"loss": 1.5, "accuracy": 0.5})
    panel.add_round(1, 1, committed=True, finetuned=True, val_loss_after=1.2, val_accuracy_after=0.62)
    panel.add_epoch(
        2,
        {"loss": 3.01, "ce": 1.87, "accuracy": 0.6},
        {"loss": 1.1, "accuracy": 0.7, "broken_accuracy": 0.55, "broken_loss": 1.4},
    )
    panel.add_epoch(3, {"loss": 2.0, "ce": 1.0, "accuracy": 0.8}, {"loss": 61.0, "accuracy": 0.33, "broken_accuracy": 0.3})
    panel.flush()
    tk_root.update()
    assert panel.batch_loss == [1.87]  # the CE of the batch, not CE + lambda x penalty
    assert panel.train_loss == [1.9, 1.87, 1.0]
    assert panel.penalty == pytest.approx([0.0, 1.14, 1.0])
    assert panel.broken_accuracy[0] != panel.broken_accuracy[0]  # NaN: absent in epoch 1
    assert panel.broken_accuracy[1:] == [0.55, 0.3]
    assert panel.loss_top < 61  # the 61 does not flatten the other curves...
    _, top, outliers = panel._shown_limits
    assert (3, 61.0) in [(e, v) for e, v, _ in outliers]  # ...it is marked at the top edge
    texts = [t.get_text() for t in panel.loss_axes.texts]
    assert "61" in texts and "R1" in texts
    labels = [t.get_text() for t in panel.loss_axes.get_legend().get_texts()]
    assert {
        "train CE",
        "validation",
        "val, shortcut broken",
        "penalty (\u03bb \u00d7 guidance)",
        "val after round (committed)",
        "round committed",
    } <= set(labels)
    accuracy_labels = [t.get_text() for t in panel.accuracy_axes.get_legend().get_texts()]
    assert "val, shortcut broken" in accuracy_labels
    star = [line for line in panel.accuracy_axes.lines if line.get_marker() == "*"]
    assert star and list(star[0].get_ydata()) == [0.62]
    # legends sit right of the axes: they cover neither curves nor round labels
    renderer = panel.canvas.get_renderer()
    for axes in (panel.loss_axes, panel.accuracy_axes):
        legend_box = axes.get_legend().get_window_extent(renderer)
        assert legend_box.x0 >= axes.bbox.x1
    panel.destroy()


def test_plots_show_the_shortcut_free_test_folder_live_and_from_a_stored_run(tk_root):
    from ui.widgets.plots import PlotsPanel

    panel = PlotsPanel(tk_root)
    panel.pack()
    panel.add_epoch(1, {"loss": 1.0, "accuracy": 0.5}, {"loss": 1.2, "accuracy": 0.9, "test_accuracy": 0.2, "test_loss": 2.1})
    panel.flush()
    assert panel.test_accuracy == [0.2] and panel.test_loss == [2.1]
    for axes in (panel.loss_axes, panel.accuracy_axes):
        assert "test, shortcut-free" in [t.get_text() for t in axes.get_legend().get_texts()]
    rows = [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "val_accuracy": 0.9, "val_test_accuracy": 0.2},
        {"epoch": 2, "train_loss": 0.9, "val_loss": 1.1, "val_accuracy": 0.8, "val_test_accuracy": 0.6},
    ]
    panel.set_history(rows)  # a reopened session: its checkpoint's flat records
    panel.flush()
    assert panel.test_accuracy == [0.2, 0.6]
    assert list(panel.lines["test_accuracy"].get_ydata()) == [0.2, 0.6]
    panel.destroy()


def test_plots_without_broken_accuracy_show_no_such_series(tk_root):
    from ui.widgets.plots import PlotsPanel

    panel = PlotsPanel(tk_root)
    panel.pack()
    panel.add_epoch(1, {"loss": 1.0, "accuracy": 0.5}, {"loss": 1.2, "accuracy": 0.4})
    panel.flush()
    labels = [t.get_text() for t in panel.loss_axes.get_legend().get_texts()]
    assert "val, shortcut broken" not in labels and not any("penalty" in x for x in labels)
    assert "test, shortcut-free" not in labels
    assert panel.train_loss == [1.0]  # no CE key: the total stands in
    panel.destroy()


def test_a_series_that_appears_mid_run_gets_its_legend_entry_without_a_forced_redraw(tk_root):
    """Issue 21: the test line was unlabelled until the first commit, the shortcut-broken line and
    the penalty until the session was reopened (the legend only changed when the axes did)."""
    from tk_wait import wait_until

    from ui.widgets.plots import PlotsPanel

    panel = PlotsPanel(tk_root, min_update_s=0.0)
    panel.pack()
    panel.set_run_range(4)
    panel.add_epoch(1, {"loss": 1.0, "accuracy": 0.5}, {"loss": 1.2, "accuracy": 0.6})
    panel.flush()  # the first draw; from here on only the live updates run

    def legend(axes):
        return [t.get_text() for t in axes.get_legend().get_texts()]

    assert "test, shortcut-free" not in legend(panel.accuracy_axes)
    val = {"loss": 1.1, "accuracy": 0.7, "test_accuracy": 0.3, "test_loss": 2.0, "broken_accuracy": 0.4, "broken_loss": 1.5}
    panel.add_epoch(2, {"loss": 0.9, "accuracy": 0.6, "guidance": 0.2}, val)  # same axis limits as before
    wait_until(panel, lambda: panel._pending is None and "test, shortcut-free" in legend(panel.accuracy_axes))
    for axes in (panel.loss_axes, panel.accuracy_axes):
        assert {"test, shortcut-free", "val, shortcut broken"} <= set(legend(axes))
    panel.destroy()


def test_a_reopened_session_keeps_the_x_range_of_its_total_epochs(tk_root):
    # after "Open session" the x range shrank to the epochs done (3 of 10)
    from ui.widgets.plots import PlotsPanel

    panel = PlotsPanel(tk_root)
    panel.pack()
    rows = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val_accuracy": 0.3 * e} for e in (1, 2, 3)]
    panel.set_history(rows, [{"round": 1, "epoch": 2, "decision": "commit"}], last_epoch=10)
    panel.flush()
    assert panel.run_epochs == 10
    assert panel.loss_axes.get_xlim() == panel.accuracy_axes.get_xlim() == (0.0, 10.3)
    panel.set_history(rows)  # no total known: the epochs done, as before
    panel.flush()
    assert panel.loss_axes.get_xlim()[1] == 3.3
    panel.destroy()


def test_a_round_label_sits_above_the_plots_clear_of_its_star(tk_root):
    # at 1280 x 720 with the trust banner the "R1" label, inside the axes' top, sat on the star
    from ui.widgets.plots import PlotsPanel

    panel = PlotsPanel(tk_root)
    panel.pack(fill="both", expand=True)
    tk_root.geometry("640x260")
    tk_root.update()
    panel.set_run_range(6)
    panel.add_epoch(1, {"loss": 0.5, "accuracy": 0.9}, {"loss": 0.4, "accuracy": 0.95})
    panel.add_round(1, 1, committed=True, finetuned=True, val_loss_after=0.45, val_accuracy_after=0.99)
    panel.flush()
    tk_root.update()
    renderer = panel.canvas.get_renderer()
    (label,) = [t for t in panel.loss_axes.texts if t.get_text() == "R1"]
    assert not [t for t in panel.accuracy_axes.texts if t.get_text() == "R1"]  # named once
    box = label.get_window_extent(renderer)
    assert box.y0 >= panel.loss_axes.bbox.y1 - 1  # above the axes, where no marker is drawn
    for axes in (panel.loss_axes, panel.accuracy_axes):
        (star,) = [line for line in axes.lines if line.get_marker() == "*"]
        x, y = axes.transData.transform((1, star.get_ydata()[0]))
        assert not (box.x0 - 6 <= x <= box.x1 + 6 and box.y0 - 6 <= y <= box.y1 + 6)
    panel.destroy()
