"""The import dialog (ui.windows.mask_import_dialog): its pure parts, and the dialog driven on a real Tk
under Xvfb: pick a source, map labels, check (preview, what is in the way), import."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from tk_wait import wait_until

from datasets import MaskStore
from datasets.mask_formats import DataImages, read_coco
from datasets.mask_formats.coco_rle import encode_rle
from datasets.masks import GREEN, RED
from ui.windows.mask_import_dialog import MaskImportDialog, labels_in, plan_text, preview_composites

SIDE = 24


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(root / label / f"{label}_{i}.png")
    return root


@pytest.fixture
def coco(tmp_path):
    region = np.zeros((SIDE, SIDE), dtype=bool)
    region[:6, :6] = True
    path = tmp_path / "c.json"
    images = [
        {"id": i, "file_name": f"{c}_{i % 3}.png", "height": SIDE, "width": SIDE} for i, c in enumerate(["cat"] * 3 + ["dog"])
    ]
    images.append({"id": 9, "file_name": "zebra.png", "height": SIDE, "width": SIDE})
    annotations = [{"id": i, "image_id": i, "category_id": 1, "segmentation": encode_rle(region)} for i in range(4)]
    annotations.append({"id": 9, "image_id": 9, "category_id": 1, "segmentation": encode_rle(region)})
    annotations.append({"id": 10, "image_id": 0, "category_id": 2, "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]]})
    categories = [{"id": 1, "name": "ruler"}, {"id": 2, "name": "lesion"}, {"id": 3, "name": "unused"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_labels_preview_and_summary(data, coco):
    assert labels_in(str(coco), "coco") == {"ruler": 5, "lesion": 1, "unused": 0}
    images = DataImages.scan(data)
    plan = read_coco(coco, images, red=["ruler"], green=[], skip_unmatched=True)
    previews = preview_composites(plan, images, limit=2, side=48)
    assert [r for r, _ in previews] == ["cat/cat_0.png", "cat/cat_1.png"]
    thumbnail = previews[0][1]
    assert thumbnail.shape == (48, 48, 3)  # grown to the preview's side, each pixel doubled
    original = np.asarray(Image.open(data / "cat" / "cat_0.png").convert("RGB")).repeat(2, axis=0).repeat(2, axis=1)
    assert (thumbnail[:12, :12] != original[:12, :12]).any() and (thumbnail[20:, 20:] == original[20:, 20:]).all()
    text = plan_text(plan, ["cat/cat_0.png"])
    assert "4 images get a mask" in text and "zebra.png" in text and "lesion (1)" in text and "1 of them already" in text


@pytest.mark.gui
def test_the_dialog_checks_then_imports_keeping_hand_painted(tk_root, data, coco, tmp_path):
    store = MaskStore(tmp_path / "masks")
    painted = np.zeros((SIDE, SIDE), np.int8)
    painted[-1, -1] = GREEN
    store.save("cat/cat_0.png", painted)
    done = []
    dialog = MaskImportDialog(tk_root, str(data), store, on_done=done.append)
    dialog.set_source(str(coco))
    assert sorted(dialog.label_choices) == ["lesion", "ruler", "unused"]
    assert dialog.import_button.instate(["disabled"])
    dialog.label_choices["ruler"].set("red")
    dialog.label_choices["lesion"].set("green")
    dialog.check_button.invoke()
    wait_until(tk_root, lambda: dialog.plan is not None, timeout=30)
    assert "4 images get a mask" in dialog.summary_var.get() and "1 of them already" in dialog.summary_var.get()
    assert len(dialog.preview.winfo_children()) == 4
    assert not dialog.import_button.instate(["disabled"])
    dialog.import_button.invoke()
    wait_until(tk_root, lambda: dialog.result is not None, timeout=30)
    assert done and done[0].kept == ("cat/cat_0.png",)
    np.testing.assert_array_equal(store.load_array("cat/cat_0.png"), painted)
    assert (store.load_array("dog/dog_0.png")[:6, :6] == RED).all()
    dialog.close()


@pytest.mark.gui
def test_the_main_window_buttons_import_into_the_open_session_and_write_its_report(tk_root, data, coco, tmp_path, monkeypatch):
    import ui.windows.session_buttons as buttons_module
    from app.run.session import Session
    from ui.main_window.window import MainWindow

    window = MainWindow(tk_root, sessions_root=str(tmp_path / "sessions"), destroy_root_on_close=False)
    tk_root.update()
    try:
        window.import_masks_button.invoke()  # no session yet: says so
        assert window.error_dialog is not None and "Open a session" in window.error_dialog.message_label.cget("text")
        window.error_dialog.close()

        session = Session.create(tmp_path / "session", data)
        assert window.open_session(str(session.folder))
        window.import_masks_button.invoke()
        dialog = window.mask_import_dialog
        dialog.set_source(str(coco))
        dialog.label_choices["ruler"].set("red")
        dialog.check_button.invoke()
        wait_until(tk_root, lambda: dialog.plan is not None, timeout=30)
        dialog.import_button.invoke()
        wait_until(tk_root, lambda: dialog.result is not None, timeout=30)
        assert session.masks.annotated() == ["cat/cat_0.png", "cat/cat_1.png", "cat/cat_2.png", "dog/dog_0.png"]
        dialog.close()

        report = tmp_path / "report.html"
        opened = []
        monkeypatch.setattr(buttons_module.filedialog, "asksaveasfilename", lambda **_options: str(report))
        monkeypatch.setattr(buttons_module.webbrowser, "open", opened.append)
        window.report_button.invoke()
        wait_until(tk_root, lambda: bool(opened), timeout=60)
        assert opened == [report.resolve().as_uri()] and "Session report" in report.read_text(encoding="utf-8")
    finally:
        window.teardown()
