"""Shared fixtures: a virtual X display for the GUI tests, and determinism for all tests."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    # Child processes the tests start (main.py, torchrun workers, crash and fit-check apps, `-c`
    # snippets) import this checkout's code, not whichever checkout the venv has installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # One intra-op thread: the models under test are tiny, and on a 2-core machine OpenMP
    # threads fighting the Tk thread (or a parallel job) cost far more than they gain.
    import torch

    torch.set_num_threads(int(os.environ.get("TEST_TORCH_THREADS", "1")))


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a GPU (bench/gpu_check.sh runs them); skip them without one."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run bench/gpu_check.sh on a GPU machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_everything():
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


def _display_works(display: str) -> bool:
    env = dict(os.environ, DISPLAY=display)
    probe = "import tkinter; r = tkinter.Tk(); r.destroy()"
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def x_display():
    """A DISPLAY for Tk: the one already set if it works, else a private Xvfb for the session."""
    current = os.environ.get("DISPLAY")
    if current and _display_works(current):
        yield current
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("GUI tests need Xvfb (Debian package 'xvfb'); `make test` installs it")
    number = 90 + os.getpid() % 100
    display = f":{number}"
    proc = subprocess.Popen(
        [xvfb, display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not _display_works(display):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Xvfb did not start on {display}")
        time.sleep(0.2)
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def tk_root(x_display):
    """A fresh Tk root on the virtual display, destroyed after the test."""
    import tkinter

    root = tkinter.Tk()
    root.geometry("+0+0")
    yield root
    try:
        root.destroy()
    except tkinter.TclError:
        pass
    # Collect the window's Tk variables and images here, in the main thread: left to a later
    # collection they may be freed in a trainer thread, where Tk raises "main thread is not in
    # main loop" (seen as a PytestUnraisableExceptionWarning in a CLI test).
    del root
    gc.collect()


def make_image_folder(root: Path, classes=("cat", "dog"), per_class: int = 12, size: int = 32, seed: int = 0) -> Path:
    """A tiny learnable image folder: class k is a bright square in a class-specific place."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            top = (k * size // len(classes)) % (size - 8)
            pixels[top : top + 8, 4:12] = 230
            Image.fromarray(pixels).save(root / name / f"{name}_{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    """root/<class>/<image>.png with two classes of 12 images each."""
    return make_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """The built-in shortcut demo data (train/val/test/truth), generated once per test session."""
    from datasets import make_demo_data

    root = tmp_path_factory.mktemp("demo")
    make_demo_data(root, seed=0)
    return root
