"""The progress panel's lines after Stop: no time left is promised, wherever the run stood."""

import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def panel(tk_root):
    from ui.widgets.progress_panel import ProgressPanel

    widget = ProgressPanel(tk_root)
    yield widget
    widget.destroy()


def test_stop_between_two_epochs_says_stopped(panel):
    """An epoch's end resets the batch count; a Stop before the next batch said "Run: 100%" or
    a time left (a test driving the real window caught it under load)."""
    panel.run_started(1, 2, 4)
    for batch in range(1, 5):
        panel.batch_done(1, batch, 4, 2)
    panel.epoch_done(1, 2, 3.0)
    panel.run_stopped()
    assert panel.run_text.get() == "Run: stopped at 50%"


def test_stop_before_the_first_batch_leaves_the_lines_alone(panel):
    panel.run_started(1, 2, 4)
    before = panel.run_text.get()
    panel.run_stopped()
    assert panel.run_text.get() == before
