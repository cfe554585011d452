"""The gallery: filters (pure), and painting any training image from the gallery, the
reasonability window and the propagation preview during a real round (real Tk events)."""

from __future__ import annotations

import shutil

import pytest
from tk_wait import wait_until

from app.engine.config import FinetuneConfig
from app.run import messages as msg
from ui.helpers.gallery_filter import ANY, GalleryFilter, filter_entries, prediction_choices


def _entries():
    return [
        msg.GalleryEntry("a/1.png", "a", "a", 0.9),
        msg.GalleryEntry("a/2.png", "a", "b", 0.6),
        msg.GalleryEntry("b/1.png", "b", "b", 0.8),
        msg.GalleryEntry("b/2.png", "b", "", float("nan")),
    ]


def _paths(entries):
    return [e.relpath for e in entries]


def test_filters_by_class_prediction_cell_and_mask():
    entries = _entries()
    assert _paths(filter_entries(entries, GalleryFilter())) == _paths(entries)
    assert _paths(filter_entries(entries, GalleryFilter(label="b"))) == ["b/1.png", "b/2.png"]
    assert _paths(filter_entries(entries, GalleryFilter(prediction="wrong"))) == ["a/2.png"]
    assert _paths(filter_entries(entries, GalleryFilter(prediction="right"))) == ["a/1.png", "b/1.png"]
    assert _paths(filter_entries(entries, GalleryFilter(prediction="predicted as b"))) == ["a/2.png", "b/1.png"]
    cells = {"accurate_unreasonable": ["b/1.png"]}
    assert _paths(filter_entries(entries, GalleryFilter(cell="accurate_unreasonable"), cells)) == ["b/1.png"]
    assert _paths(filter_entries(entries, GalleryFilter(cell="inaccurate_reasonable"), cells)) == []
    masked = ["a/2.png"]
    assert _paths(filter_entries(entries, GalleryFilter(mask="has a mask"), masked=masked)) == ["a/2.png"]
    assert len(filter_entries(entries, GalleryFilter(mask="no mask"), masked=masked)) == 3
    assert prediction_choices(["a", "b"]) == [ANY, "right", "wrong", "predicted as a", "predicted as b"]


@pytest.fixture(scope="module")
def mini_demo(tmp_path_factory):
    from datasets import ensure_demo_data

    full = ensure_demo_data(tmp_path_factory.getbasetemp() / "demo")
    mini = tmp_path_factory.mktemp("mini-demo-gallery")
    shutil.copy(full / "demo.json", mini / "demo.json")
    for split, count in (("train", 8), ("val", 3)):
        for class_dir in sorted((full / split).iterdir()):
            (mini / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.glob("*.png"))[:count]:
                shutil.copy(image, mini / split / class_dir.name / image.name)
    return mini


@pytest.mark.gui
def test_paint_any_image_from_the_gallery_and_the_reasonability_window(tk_root, tmp_path, mini_demo):
    from ui.main_window.window import MainWindow

    window = MainWindow(
        tk_root,
        sessions_root=str(tmp_path / "s"),
        demo_dir=str(mini_demo),
        destroy_root_on_close=False,
        finetune_config=FinetuneConfig(max_steps=2, check_every=2),
    )
    try:
        form = window.settings.vars
        form["epochs"].set("2")
        form["feedback_every"].set("1")
        form["images_per_round"].set("2")
        window.train_button.invoke()
        wait_until(window, lambda: window.brush_window is not None, timeout=120)
        brush = window.brush_window
        assert len(brush.items) == 2
        brush.gallery_button.invoke()
        wait_until(window, lambda: window.gallery_window is not None, timeout=60)
        gallery = window.gallery_window
        assert len(gallery.entries) == 80 and len(gallery.tiles) == 48  # a page of thumbnails
        gallery.label_var.set("3")
        assert {e.true_label for e in gallery.shown} == {"3"} and len(gallery.shown) == 8
        gallery.update()
        target = gallery.shown[0].relpath
        tile = gallery.tiles[target]
        tile.event_generate("<Button-1>", x=5, y=5)
        assert gallery.selected == [target]
        gallery.paint_button.invoke()
        wait_until(window, lambda: len(brush.items) == 3, timeout=60)
        assert brush.item.relpath == target and brush.item.reason.startswith("chosen by you; hiding the top")
        assert brush.counter_label.cget("text") == "Image 3 of 3"
        # the reasonability window's "Paint these" (the cell's images) lands in the brush too
        matrix_window = window.on_reasonability()
        cell = next(
            c
            for c, members in window.reasonability.matrix.members.items()
            if members and members[0] not in {i.relpath for i in brush.items}
        )
        first = window.reasonability.matrix.members[cell][0]
        listbox = matrix_window.lists[cell]
        listbox.selection_clear(0, "end")
        listbox.selection_set(0)
        matrix_window.paint_buttons[cell].invoke()
        wait_until(window, lambda: first in {i.relpath for i in brush.items}, timeout=60)
        assert brush.item.relpath == first
        # painting an added image works like any other and Done fine-tunes on it
        brush.set_tool("red")
        brush.canvas.event_generate("<ButtonPress-1>", x=200, y=200)
        brush.canvas.event_generate("<ButtonRelease-1>", x=200, y=200)
        brush.update()
        brush.done_button.invoke()
        wait_until(window, lambda: window.chooser_window is not None, timeout=120)
        assert window.session.masks.has(first)
        window.chooser_window.reject_button.invoke()
        wait_until(window, lambda: window.finished is not None, timeout=120)
    finally:
        if window.trainer is not None:
            window.trainer.stop()
        if window.thread is not None:
            window.thread.join(30)
        window.teardown()


@pytest.mark.gui
def test_images_chosen_between_rounds_open_at_the_next_round(tk_root, tmp_path, mini_demo):
    from ui.main_window.window import MainWindow

    window = MainWindow(tk_root, sessions_root=str(tmp_path / "s"), demo_dir=str(mini_demo), destroy_root_on_close=False)
    try:
        assert window.gallery_button.instate(["disabled"])  # no session yet
        form = window.settings.vars
        form["epochs"].set("3")
        form["feedback_every"].set("2")
        form["images_per_round"].set("2")
        window.train_button.invoke()
        wait_until(window, lambda: window.session is not None, timeout=60)
        assert window.gallery_button.instate(["!disabled"])
        window.gallery_button.invoke()  # mid-training: the folder as it is on disk
        gallery = window.gallery_window
        assert len(gallery.entries) == 80 and all(e.predicted_label == "" for e in gallery.entries)
        gallery.label_var.set("7")
        chosen = [e.relpath for e in gallery.shown[:2]]
        gallery.click(chosen[0])
        gallery.click(chosen[1], 0x0004)  # Ctrl-click adds
        gallery.paint_button.invoke()
        assert window.paint_queue == chosen
        assert "queued" in window.status_var.get()
        gallery.destroy()
        wait_until(window, lambda: window.brush_window is not None, timeout=180)
        brush = window.brush_window
        wait_until(window, lambda: len(brush.items) >= 3, timeout=60)
        relpaths = {item.relpath for item in brush.items}
        assert set(chosen) <= relpaths
        assert window.paint_queue == []
        brush.cancel_button.invoke()
        wait_until(window, lambda: window.finished is not None, timeout=120)
    finally:
        if window.trainer is not None:
            window.trainer.stop()
        if window.thread is not None:
            window.thread.join(30)
        window.teardown()


def test_a_caption_is_red_only_when_the_prediction_is_wrong(tk_root, tmp_path):
    # between rounds the gallery lists the folder without predictions: every caption was red
    from ui.windows.gallery_window import CAPTION_RIGHT, CAPTION_UNKNOWN, CAPTION_WRONG, GalleryWindow

    gallery = GalleryWindow(tk_root, _entries(), str(tmp_path), on_paint=lambda relpaths: None)
    try:
        colours = {relpath: tile.winfo_children()[-1].cget("foreground") for relpath, tile in gallery.tiles.items()}
        assert colours["a/1.png"] == colours["b/1.png"] == CAPTION_RIGHT
        assert (colours["a/2.png"], colours["b/2.png"]) == (CAPTION_WRONG, CAPTION_UNKNOWN)
    finally:
        gallery.destroy()


def _folder_with_a_broken_image(root):
    """Two readable PNGs, `broken.jpg` (random bytes: training skips it) and `cut.png` (a good
    header, the pixels cut off)."""
    import io

    from PIL import Image

    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), "white").save(root / name / "1.png")
    (root / "a" / "broken.jpg").write_bytes(bytes(range(256)) * 4)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="PNG")
    (root / "b" / "cut.png").write_bytes(buffer.getvalue()[:60])
    return root


def test_the_folder_listing_leaves_out_a_file_that_is_no_image(tmp_path):
    from ui.helpers.gallery_filter import scan_folder, unreadable_text

    listing = scan_folder(_folder_with_a_broken_image(tmp_path / "train"))
    assert _paths(listing.entries) == ["a/1.png", "b/1.png", "b/cut.png"]  # cut.png: its header reads
    assert [relpath for relpath, _ in listing.unreadable] == ["a/broken.jpg"]
    assert unreadable_text(listing.unreadable).startswith("1 unreadable file left out")
    assert "a/broken.jpg" in unreadable_text(listing.unreadable) and unreadable_text([]) == ""


def test_the_gallery_between_rounds_counts_and_marks_unreadable_images(tk_root, tmp_path):
    # a corrupt broken.jpg was a black tile, counted as "41 of 41"
    from types import SimpleNamespace

    from ui.main_window.window import MainWindow
    from ui.windows.gallery_window import CAPTION_WRONG

    train = _folder_with_a_broken_image(tmp_path / "train")
    main = MainWindow(tk_root, sessions_root=str(tmp_path / "s"), destroy_root_on_close=False)
    try:
        main.controller.session = SimpleNamespace(train_dir=str(train), masks=SimpleNamespace(annotated=lambda: []))
        gallery = main.on_main_gallery()
        assert len(gallery.entries) == 3 and "a/broken.jpg" not in gallery.tiles
        count = gallery.count_label.cget("text")
        assert count.startswith("3 images of 3 match; 1 unreadable file left out") and "a/broken.jpg" in count
        caption = gallery.tiles["b/cut.png"].winfo_children()[-1]
        assert caption.cget("text") == "b: unreadable" and caption.cget("foreground") == CAPTION_WRONG
        assert gallery.tiles["a/1.png"].winfo_children()[-1].cget("text") == "a"
        gallery.destroy()
    finally:
        main.controller.session = None
        main.on_close()


def test_an_image_too_large_to_open_is_listed_as_unreadable(tmp_path, monkeypatch):
    """Pillow refuses a decompression bomb with an error of its own (neither OSError nor
    ValueError); it must not stop the listing (training skips such a file too)."""
    from PIL import Image

    from ui.helpers.gallery_filter import scan_folder

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / label / "1.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "a" / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 > 2 x 1000: a "bomb" here
    listing = scan_folder(tmp_path)
    assert [relpath for relpath, _ in listing.unreadable] == ["a/huge.png"]
    assert "DecompressionBombError" in listing.unreadable[0][1]
    assert sorted(entry.relpath for entry in listing.entries) == ["a/1.png", "b/1.png"]
