"""The discovery window runs discovery on a checkpoint in its own thread and shows the groups;
"Paint one" hands a group's most typical image to the main window. Tk on a virtual display."""

from __future__ import annotations

import pytest
import torch

from app.engine.checkpoint import save_checkpoint
from models import build_model
from tests.tk_wait import wait_until

pytestmark = pytest.mark.gui


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model("small_cnn", 2)
    return save_checkpoint(
        tmp_path / "model.pt", model, model_name="small_cnn", classes=["cat", "dog"], input_size=32,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), epoch=1,
    )  # fmt: skip


def test_window_shows_groups_and_paints_one(tk_root, image_folder, checkpoint):
    from ui.windows.discovery_window import DiscoveryWindow

    asked = []
    window = DiscoveryWindow(tk_root, str(checkpoint), str(image_folder), on_paint=asked.append)
    wait_until(window, lambda: window.result is not None or window.error is not None, what="discovery")
    assert window.error is None
    groups = window.result.clusters
    assert len(groups) == len(window.paint_buttons) == 6  # three per class
    assert sum(group.size for group in groups) == 24
    assert window.group_labels[0].cget("text") == groups[0].describe()
    assert "24 images in 6 groups" in window.status_var.get()
    window.paint_buttons[1].invoke()
    assert asked == [[groups[1].relpaths[0]]]
    window.close()
    assert window.stop.is_set()


def test_a_bad_checkpoint_is_reported_in_the_window(tk_root, image_folder, tmp_path):
    from ui.windows.discovery_window import DiscoveryWindow

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    window = DiscoveryWindow(tk_root, str(broken), str(image_folder))
    wait_until(window, lambda: window.error is not None, what="the error")
    assert window.status_var.get().startswith("Discovery failed:")
    window.close()


def test_main_window_button_opens_discovery_on_the_session_model(tk_root, image_folder, checkpoint, tmp_path):
    from types import SimpleNamespace

    from ui.main_window.window import MainWindow
    from ui.windows.discovery_window import DiscoveryWindow

    main = MainWindow(tk_root, sessions_root=str(tmp_path / "sessions"), destroy_root_on_close=False)
    assert main.discover_button.instate(["disabled"])  # no session yet: it waits, and its tip says why
    assert "Discovery needs a trained model" in main.discover_tip.show().winfo_children()[0].cget("text")
    main.discover_tip.hide()
    main.on_discover()  # called anyway: the status line says why
    assert "Discovery needs a trained model" in main.status_var.get()
    main.controller.session = SimpleNamespace(checkpoint_path=checkpoint, train_dir=str(image_folder))
    main.update_discover_button()  # what a checkpoint saved or a session opened does
    assert main.discover_button.instate(["!disabled"])
    main.discover_button.invoke()
    (window,) = [w for w in tk_root.winfo_children() if isinstance(w, DiscoveryWindow)]
    wait_until(window, lambda: window.result is not None or window.error is not None, what="discovery")
    assert window.error is None and window.on_paint == main.paint_images
    window.close()
    main.controller.session = None
    main.on_close()
