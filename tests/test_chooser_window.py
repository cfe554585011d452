"""ChooserWindow: Commit / Reject by button, key and window close; browsing; mask outlines."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.finetune_report import STOP_GUIDANCE, FinetuneReport
from app.run.messages import Comparison, FinetuneDone
from ui.windows.chooser_window import ChooserWindow, compose


def make_done(n: int = 2) -> FinetuneDone:
    rng = np.random.default_rng(0)
    comparisons = []
    for i in range(n):
        image = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
        mask = np.zeros((32, 32), dtype=np.int8)
        mask[0:4, 0:4] = 1
        mask[10:20, 10:20] = -1
        comparisons.append(
            Comparison(
                relpath=f"{i}/img_{i:04d}.png",
                image=image,
                mask=mask,
                saliency_old=rng.random((32, 32), dtype=np.float32),
                saliency_new=rng.random((32, 32), dtype=np.float32),
                true_label=str(i),
                predicted_old="7",
                predicted_new=str(i),
                confidence_old=0.91,
                confidence_new=0.64,
            )
        )
    report = FinetuneReport(
        stop_reason=STOP_GUIDANCE,
        steps=37,
        n_annotated=n,
        val_loss_before=0.5,
        val_loss_after=0.55,
        val_accuracy_before=0.9,
        val_accuracy_after=0.88,
        guidance_before=2.0,
        guidance_after=0.8,
        red_share_before=0.4,
        red_share_after=0.1,
        green_share_before=0.2,
        green_share_after=0.45,
        seconds=3.2,
    )
    return FinetuneDone(round=3, report=report, comparisons=tuple(comparisons))


class Calls:
    def __init__(self):
        self.commits = 0
        self.rejects = 0

    def commit(self):
        self.commits += 1

    def reject(self):
        self.rejects += 1


def open_chooser(root, done=None):
    calls = Calls()
    window = ChooserWindow(root, done or make_done(), calls.commit, calls.reject)
    window.update()
    return window, calls


# ------------------------------------------------------------------------- pure helpers
def test_compose_enlarges_and_draws_the_outline_in_the_mask_colours():
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    mask = np.zeros((8, 8), dtype=np.int8)
    mask[0:2, 0:2] = 1
    picture = compose(image, np.zeros((8, 8), np.float32), mask, 80, show_heatmap=False)
    assert picture.shape == (80, 80, 3)
    assert tuple(picture[0, 0]) == (255, 0, 0)  # outline at the image corner
    assert tuple(picture[70, 70]) == (100, 100, 100)  # untouched, no heatmap
    assert tuple(picture[10, 10]) == (100, 100, 100)  # inside the red square, off its 2-pixel rim
    assert tuple(picture[10, 19]) == (255, 0, 0) and tuple(picture[10, 20]) == (100, 100, 100)  # its inner edge
    plain = compose(image, np.zeros((8, 8), np.float32), None, 80, show_heatmap=False)
    assert np.all(plain == 100)


# ------------------------------------------------------------------------------ window
@pytest.mark.gui
def test_commit_button_calls_on_commit_once_and_closes(tk_root):
    window, calls = open_chooser(tk_root)
    window.commit_button.invoke()
    assert window.result == "commit"
    assert (calls.commits, calls.rejects) == (1, 0)
    assert not window.winfo_exists()


@pytest.mark.gui
def test_reject_button_calls_on_reject(tk_root):
    window, calls = open_chooser(tk_root)
    window.reject_button.invoke()
    assert window.result == "reject"
    assert (calls.commits, calls.rejects) == (0, 1)


@pytest.mark.gui
@pytest.mark.parametrize(
    "key, result", [("<Return>", "commit"), ("<Key-c>", "commit"), ("<Escape>", "reject"), ("<Key-r>", "reject")]
)
def test_keys_choose(tk_root, key, result):
    window, calls = open_chooser(tk_root)
    window.focus_force()
    window.update()
    window.event_generate(key)
    tk_root.update()
    assert window.result == result
    assert (calls.commits, calls.rejects) == ((1, 0) if result == "commit" else (0, 1))


@pytest.mark.gui
def test_closing_the_window_rejects(tk_root):
    window, calls = open_chooser(tk_root)
    window.tk.call(window.protocol("WM_DELETE_WINDOW"))
    assert window.result == "reject"
    assert (calls.commits, calls.rejects) == (0, 1)


@pytest.mark.gui
def test_browsing_and_numbers_shown(tk_root):
    window, _ = open_chooser(tk_root)
    assert window.position_label.cget("text").startswith("Image 1 of 2")
    assert "disabled" in window.prev_button.state()
    window.focus_force()
    window.update()
    window.event_generate("<Right>")
    assert window.index == 1
    assert window.position_label.cget("text").startswith("Image 2 of 2:  1/img_0001.png")
    assert "disabled" in window.next_button.state()
    window.next_button.invoke()  # disabled: nothing happens
    assert window.index == 1
    window.prev_button.invoke()
    assert window.index == 0
    assert window.caption_labels[0].cget("text") == "predicted 7 (91%)"
    assert window.caption_labels[1].cget("text") == "predicted 0 (64%)"
    before, after = window.summary_labels["Saliency on red"]
    assert (before.cget("text"), after.cget("text")) == ("40.0%", "10.0%")
    assert "guidance loss fell past the target" in window.stop_label.cget("text")
    assert "37 steps" in window.stop_label.cget("text")
    assert "your masks are kept: Reject only discards this round's weights" in window.stop_label.cget("text")
    window.reject()


@pytest.mark.gui
def test_a_round_without_comparisons_still_decides(tk_root):
    done = make_done(0)
    window, calls = open_chooser(tk_root, done)
    assert window.position_label.cget("text") == "No annotated images to compare"
    window.commit_button.invoke()
    assert calls.commits == 1


@pytest.mark.gui
def test_after_values_are_coloured_by_whether_they_improved(tk_root):
    window, _ = open_chooser(tk_root)
    colour = lambda name: str(window.summary_labels[name][1].cget("foreground"))  # noqa: E731
    assert colour("Validation accuracy") == "#c00000"  # 90% -> 88%: worse
    assert colour("Validation loss") == "#c00000"  # 0.5 -> 0.55: worse
    assert colour("Saliency on red") == "#1a7f1a"  # 40% -> 10%: better
    assert colour("Saliency on green") == "#1a7f1a"  # 20% -> 45%: better
    window.reject()


def test_outline_does_not_wrap_around_the_image_edges():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    mask = np.zeros((8, 8), dtype=np.int8)
    mask[6:8, 0:2] = 1  # a swatch in the bottom-left corner
    picture = compose(image, np.zeros((8, 8), np.float32), mask, 8, show_heatmap=False)
    assert not picture[0].any()  # nothing leaks to the top row
    assert not picture[:, 7].any()  # nor to the right column
    assert tuple(picture[7, 0]) == (255, 0, 0)


@pytest.mark.gui
def test_a_round_worse_on_the_shortcut_broken_validation_says_so(tk_root):
    import dataclasses

    done = make_done()
    worse = dataclasses.replace(
        done.report, broken_accuracy_before=0.62, broken_accuracy_after=0.48, val_accuracy_before=0.70, val_accuracy_after=0.85
    )  # plain val rose
    window, _ = open_chooser(tk_root, dataclasses.replace(done, report=worse))
    text = window.verdict_label.cget("text")
    assert text.startswith("WORSE: shortcut-broken validation 62.0 % -> 48.0 %")
    assert "Shortcut-broken val. accuracy" in window.summary_labels
    better = dataclasses.replace(done.report, broken_accuracy_before=0.40, broken_accuracy_after=0.60)
    window2, _ = open_chooser(tk_root, dataclasses.replace(done, report=better))
    assert window2.verdict_label.cget("text").startswith("Better:")


@pytest.mark.gui
def test_the_shortcut_free_test_folder_is_shown_first_and_only_when_there_is_one(tk_root):
    import dataclasses

    done = make_done()
    window, _ = open_chooser(tk_root, done)
    assert "Shortcut-free test accuracy" not in window.summary_labels
    measured = dataclasses.replace(done.report, test_accuracy_before=0.21, test_accuracy_after=0.58)
    window2, _ = open_chooser(tk_root, dataclasses.replace(done, report=measured))
    before, after = window2.summary_labels["Shortcut-free test accuracy"]
    assert (before.cget("text"), after.cget("text")) == ("21.0%", "58.0%")
    assert list(window2.summary_labels)[0] == "Shortcut-free test accuracy"
    assert window2.verdict_label.cget("text") == window.verdict_label.cget("text")  # it never judges the round


@pytest.mark.gui
def test_a_change_within_sampling_noise_reads_unclear_with_its_counts(tk_root):
    import dataclasses

    done = make_done()
    noisy = dataclasses.replace(
        done.report,
        broken_accuracy_before=0.40,
        broken_accuracy_after=0.43,
        broken_gained=40,
        broken_lost=29,
        broken_images=359,
        red_share_after=done.report.red_share_before / 2,
    )  # 3 points up, but 40 gained against 29 lost is chance
    window, _ = open_chooser(tk_root, dataclasses.replace(done, report=noisy))
    text = window.verdict_label.cget("text")
    assert text.startswith("Unclear: shortcut-broken validation 40.0 % -> 43.0 % (+40 / -29 images, within noise)")
    clear = dataclasses.replace(noisy, broken_gained=40, broken_lost=5, broken_accuracy_after=0.50)
    window2, _ = open_chooser(tk_root, dataclasses.replace(done, report=clear))
    assert window2.verdict_label.cget("text").startswith("Better: shortcut-broken validation 40.0 % -> 50.0 % (+40 / -5 images)")
    # the row's colour follows the same rule: within noise it is not shown as a gain
    row = "Shortcut-broken val. accuracy"
    assert str(window.summary_labels[row][1].cget("foreground")) == "#000000"
    assert str(window2.summary_labels[row][1].cget("foreground")) == "#1a7f1a"


def test_the_chooser_reopens_at_the_size_the_user_left_it(tk_root, tmp_path):
    import json

    from ui.helpers.window_geometry import GeometryStore

    store = GeometryStore(tmp_path / "windows.json")
    first = ChooserWindow(tk_root, make_done(), lambda: None, lambda: None, geometry_store=store)
    first.geometry("760x540+20+30")  # the user resizes it
    tk_root.update()
    first.destroy()
    assert json.loads((tmp_path / "windows.json").read_text())["chooser"].startswith("760x540")
    second = ChooserWindow(tk_root, make_done(), lambda: None, lambda: None, geometry_store=store)
    tk_root.update()
    assert second.winfo_width() == 760 and second.winfo_height() == 540
    second.destroy()


def _no_green(done):
    import dataclasses

    comparisons = []
    for c in done.comparisons:
        mask = c.mask.copy()
        mask[mask < 0] = 0
        comparisons.append(dataclasses.replace(c, mask=mask))
    report = dataclasses.replace(done.report, green_share_before=0.0, green_share_after=0.0)
    return dataclasses.replace(done, report=report, comparisons=tuple(comparisons))


@pytest.mark.gui
def test_the_numbers_do_not_contradict_each_other(tk_root):
    """Issue 21: guidance loss drawn green (1.477 -> 0.75) while saliency on red rose
    (4.0 % -> 4.1 %), and "saliency on green 0.0 % -> 0.0 %" with nothing painted green."""
    import dataclasses

    done = _no_green(make_done())
    report = dataclasses.replace(
        done.report, guidance_before=1.477, guidance_after=0.75, red_share_before=0.040, red_share_after=0.041
    )
    window, _ = open_chooser(tk_root, dataclasses.replace(done, report=report))
    before, after = window.summary_labels["Guidance loss (annotated)"]
    assert str(after.cget("foreground")) == "#000000"  # not green
    hints = [w.cget("text") for w in after.master.grid_slaves(column=3)]
    assert "fell, but the share on red below did not: judge by that" in hints
    assert str(window.summary_labels["Saliency on red"][1].cget("foreground")) == "#c00000"
    assert "Saliency on green" not in window.summary_labels  # nothing green was painted
    window.reject()
    agreeing, _ = open_chooser(tk_root)  # loss and red share both fell; green painted
    assert str(agreeing.summary_labels["Guidance loss (annotated)"][1].cget("foreground")) == "#1a7f1a"
    assert "Saliency on green" in agreeing.summary_labels
    agreeing.reject()


@pytest.mark.gui
def test_commit_on_a_worse_round_asks_first(tk_root):
    import dataclasses

    done = make_done()
    worse = dataclasses.replace(done.report, broken_accuracy_before=0.62, broken_accuracy_after=0.48)
    window, calls = open_chooser(tk_root, dataclasses.replace(done, report=worse))
    window.commit_button.invoke()
    assert calls.commits == 0 and window.result is None
    dialog = window.confirm
    assert dialog.title() == "Commit a WORSE round?" and dialog.message_label.cget("text").startswith("WORSE:")
    dialog.no_button.invoke()  # go back: still deciding
    assert calls.commits == 0 and window.winfo_exists()
    window.commit_button.invoke()
    window.confirm.yes_button.invoke()
    assert calls.commits == 1 and window.result == "commit"


@pytest.mark.gui
def test_a_round_ended_by_the_user_says_it_is_the_candidate_so_far(tk_root):
    import dataclasses

    from app.engine.finetune_report import STOP_CANCELLED

    done = make_done()
    ended = dataclasses.replace(done.report, stop_reason=STOP_CANCELLED, steps=14)
    window, calls = open_chooser(tk_root, dataclasses.replace(done, report=ended))
    assert window.stop_label.cget("text").startswith("You ended the round after 14 steps")
    window.commit_button.invoke()  # not WORSE: no question
    assert calls.commits == 1


def test_the_stop_sentence_counts_one_annotated_image_in_the_singular():
    # a round on one painted image read "on 1 annotated images"
    import dataclasses

    from app.engine.finetune_report import STOP_CANCELLED
    from ui.windows.chooser_window import stop_sentence

    one = make_done(1).report
    assert " on 1 annotated image (" in stop_sentence(one)
    assert " on 1 annotated image (" in stop_sentence(dataclasses.replace(one, stop_reason=STOP_CANCELLED))
    assert " on 2 annotated images (" in stop_sentence(make_done(2).report)
