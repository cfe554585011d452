"""The built-in demo data behind a blank data folder: found in the cache folder, or made there
on first use in a background thread so the window stays responsive.

No tkinter: the thread only puts `DemoReady` / `DemoFailed` on the window's event queue (the
`post` callable); the window's event pump handles them on the Tk thread.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

from datasets import default_demo_dir, ensure_demo_data

DEMO_MARKER = "demo.json"  # written last by ensure_demo_data: the folder is complete


@dataclass(frozen=True)
class DemoReady:
    """The demo data exists at `root` (posted by the preparation thread)."""

    root: str


@dataclass(frozen=True)
class DemoFailed:
    """The demo data could not be made: a dialog's message and the traceback."""

    message: str
    details: str = ""


def demo_target(demo_dir: Optional[str], shortcut: str) -> Path:
    """Where the demo data lives: `demo_dir` when given, else the per-user cache folder."""
    return Path(demo_dir) if demo_dir else default_demo_dir(shortcut)


def demo_is_ready(target: Path) -> bool:
    return (target / DEMO_MARKER).is_file()


def demo_folders(root: str, val_dir: Optional[str], test_dir: Optional[str] = None) -> Tuple[str, str, Optional[str]]:
    """The training, validation and test folders of a run on the demo data at `root` (the
    form's folders win when they name one). The demo's test split is shortcut-free (its swatch
    shade is random), so its accuracy is plotted from the first epoch; a demo made before it had
    one gives None."""
    demo_test = Path(root) / "test"
    return (
        str(Path(root) / "train"),
        val_dir or str(Path(root) / "val"),
        test_dir or (str(demo_test) if demo_test.is_dir() else None),
    )


def start_demo_preparation(
    target: Path, shortcut: str, post: Callable[[Any], None], make: Callable[..., Path] = ensure_demo_data
) -> threading.Thread:
    """Make the demo data at `target` in a daemon thread; `post` gets DemoReady or DemoFailed."""

    def work() -> None:
        try:
            post(DemoReady(str(make(target, shortcut=shortcut))))
        except Exception as error:  # noqa: BLE001 -- reported to the user as a dialog
            post(DemoFailed(f"Could not make the demo data: {error}", traceback.format_exc()))

    thread = threading.Thread(target=work, name="demo-data", daemon=True)
    thread.start()
    return thread
