"""Tests for the content-propagation preview: the choices (pure) and the window (Tk, marked gui)."""

from __future__ import annotations

import numpy as np
import pytest

from app.run import messages as msg
from ui.helpers.content_plan import ContentPlanChoices


def _item(relpath, confidence, side=40):
    thumbnail = np.full((side, side, 3), 90, np.uint8)
    region = np.zeros((side, side), bool)
    region[4:12, 4:12] = True
    return msg.PreviewItem(relpath, thumbnail, region, confidence)


def _preview(plan_id=0, corrections=0):
    items = (_item("1/a.png", 0.97), _item("2/b.png", 0.9), _item("3/c.png", 0.52))
    return msg.PropagationPreview(
        ("0/src.png",),
        "content",
        3,
        tuple(i.relpath for i in items),
        (),
        items,
        40,
        0.5,
        plan_id=plan_id,
        learned_from=("0/src.png", "0/other.png"),
        corrections=corrections,
    )


def test_choices_drop_and_correct_images_and_build_the_commands():
    choices = ContentPlanChoices(("0/src.png",))
    preview = _preview()
    choices.toggle("2/b.png", keep=False)
    assert choices.kept(preview) == 2
    command = choices.not_this(preview.items[2])
    assert isinstance(command, msg.MarkNotThis) and command.relpath == "3/c.png"
    assert command.region.dtype == bool and command.region.sum() == 64
    assert choices.kept(preview) == 1
    assert choices.preview_command() == msg.PreviewPropagation(("0/src.png",), "content", ("2/b.png", "3/c.png"))
    assert choices.apply_command() == msg.ApplyPropagation(("0/src.png",), "content", ("2/b.png", "3/c.png"))
    choices.toggle("2/b.png", keep=True)
    assert choices.apply_command().excluded == ("3/c.png",)


def test_outlined_thumbnail_draws_the_found_region_in_red():
    from ui.windows.content_preview_window import OUTLINE_RGB, TILE, outlined_thumbnail

    shown = outlined_thumbnail(_item("1/a.png", 0.9))
    assert max(shown.shape[:2]) == TILE
    red = np.all(shown == OUTLINE_RGB, axis=2)
    assert red.any()
    rows, cols = np.nonzero(red)
    scale = TILE / 40
    assert rows.min() >= 4 * scale - 1 and rows.max() <= 12 * scale  # on the region's rim only


@pytest.mark.gui
def test_preview_window_drops_corrects_and_applies(tk_root):
    from ui.windows.content_preview_window import ContentPreviewWindow

    sent, opened = [], []
    window = ContentPreviewWindow(tk_root, ("0/src.png",), sent.append, on_open=opened.append)
    window.show(_preview())
    tk_root.update()
    assert set(window.tiles) == {"1/a.png", "2/b.png", "3/c.png"}
    assert "Found in 3 of 40 images" in window.summary_label.cget("text")
    assert window.apply_button.cget("text") == "Apply to 3 images"
    # untick one: the real check button, clicked
    checkbutton = [w for w in window.tiles["2/b.png"].winfo_children()[2].winfo_children() if "check" in w.winfo_class().lower()][
        0
    ]
    checkbutton.invoke()
    assert window.apply_button.cget("text") == "Apply to 2 images"
    window.mark_not_this(window.preview.items[2])
    assert isinstance(sent[-1], msg.MarkNotThis) and sent[-1].relpath == "3/c.png"
    assert window.apply_button.cget("text") == "Apply to 1 image"
    window.rerun_button.invoke()
    assert sent[-1] == msg.PreviewPropagation(("0/src.png",), "content", ("2/b.png", "3/c.png"))
    window.show(_preview())  # the answer: choices are kept across previews
    tk_root.update()
    assert window.keep_vars["2/b.png"].get() is False and window.keep_vars["1/a.png"].get() is True
    window.apply_button.invoke()
    assert sent[-1] == msg.ApplyPropagation(("0/src.png",), "content", ("2/b.png", "3/c.png"))


def _enabled(button):
    return button.instate(["!disabled"])


@pytest.mark.gui
def test_preview_again_shows_progress_waits_and_learns_then_apply_writes_the_reviewed_plan(tk_root):
    from ui.windows.content_preview_window import ContentPreviewWindow

    sent = []
    window = ContentPreviewWindow(tk_root, ("0/src.png",), sent.append)
    window.show(_preview(plan_id=1))
    tk_root.update()
    summary = window.summary_label.cget("text")
    assert "at least 0.50 sure" in summary and "Learnt from 2 painted images." in summary  # the threshold explained
    not_this = window.not_this_buttons["3/c.png"]
    not_this.invoke()  # the real button
    assert isinstance(sent[-1], msg.MarkNotThis) and "Preview again to learn from it" in window.progress_label.cget("text")
    window.rerun_button.invoke()
    tk_root.update()
    # while the trainer looks again, nothing can be applied from the old answer
    assert not _enabled(window.apply_button) and not _enabled(window.rerun_button) and _enabled(window.cancel_button)
    assert not _enabled(window.not_this_buttons["1/a.png"])
    window.show_progress(msg.PropagationProgress(("0/src.png",), "content", "finding", 10, 40))
    tk_root.update()
    assert window.progress_label.cget("text") == "Looking through the images: 10 of 40"
    assert window.progress_bar.cget("value") == pytest.approx(0.25)
    window.show(_preview(plan_id=2, corrections=1))
    tk_root.update()
    assert "and 1 'not this' correction." in window.summary_label.cget("text")  # it learnt from it
    assert _enabled(window.apply_button) and not _enabled(window.cancel_button)
    window.apply_button.invoke()
    assert sent[-1] == msg.ApplyPropagation(("0/src.png",), "content", ("3/c.png",), plan_id=2)
    assert window.winfo_exists() and not _enabled(window.apply_button)  # stays, showing the writing
    window.show_progress(msg.PropagationProgress(("0/src.png",), "content", "writing", 1, 2))
    assert window.progress_label.cget("text") == "Writing the masks: 1 of 2"
    window.cancel_button.invoke()
    assert sent[-1] == msg.CancelPropagation()
    window.show_failed(msg.PropagationFailed(("0/src.png",), "content", "Cancelled: 1 of 2 masks were written.", cancelled=True))
    assert _enabled(window.apply_button) and window.progress_label.cget("text").startswith("Cancelled")
    window.destroy()


@pytest.mark.gui
def test_every_find_can_be_paged_to(tk_root):
    from ui.windows.content_preview_window import PAGE, ContentPreviewWindow

    count = PAGE + 5
    first = tuple(_item(f"1/{k:03d}.png", 0.99 - k / 200) for k in range(PAGE))
    event = msg.PropagationPreview(
        ("0/src.png",), "content", count, tuple(f"1/{k:03d}.png" for k in range(count)), (), first, 200, 0.5, plan_id=7
    )
    sent = []
    window = ContentPreviewWindow(tk_root, ("0/src.png",), sent.append)
    window.show(event)
    tk_root.update()
    assert window.page_label.cget("text") == "page 1 of 2" and f"Showing finds 1-{PAGE} of {count}" in window.summary_label.cget(
        "text"
    )
    assert not _enabled(window.previous_button)
    window.next_button.invoke()
    assert sent[-1] == msg.PreviewPage(7, PAGE)
    rest = tuple(_item(f"1/{k:03d}.png", 0.5) for k in range(PAGE, count))
    window.show_page(msg.PreviewPageItems(7, PAGE, rest, count))
    tk_root.update()
    assert sorted(window.tiles) == [f"1/{k:03d}.png" for k in range(PAGE, count)]
    assert window.page_label.cget("text") == "page 2 of 2" and not _enabled(window.next_button)
    assert f"Showing finds {PAGE + 1}-{count} of {count}" in window.summary_label.cget("text")
    window.previous_button.invoke()
    assert sent[-1] == msg.PreviewPage(7, 0)
    window.destroy()
