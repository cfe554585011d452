"""Shared fixtures: a virtual X display for the GUI tests, and determinism for all tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


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
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
