"""The layout of `ui/` (docs/ARCHITECTURE.md): subpackages by concept, pure modules that stay pure,
no file grown past the size a reader takes in.

Pure here means importable without tkinter (and so testable without a display): the whole of
`ui/helpers/` and the pure halves of the windows.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "ui"
MAX_LINES = 400  # issue 25: split by concept, no file over this
PURE_ELSEWHERE = (
    "ui.brush.autosave",
    "ui.brush.render",
    "ui.brush.state",
    "ui.brush.strokes",
    "ui.brush.tools",
    "ui.main_window.demo_preparation",
    "ui.main_window.round_rules",
    "ui.main_window.run_controller",
    "ui.main_window.run_controls",
    "ui.main_window.settings_form",
    "ui.widgets.plot_data",
)


def test_no_ui_module_is_longer_than_a_reader_takes_in() -> None:
    long = {str(p.relative_to(ROOT)): n for p in UI.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_subpackages_import_nothing_on_import() -> None:
    """A subpackage's __init__ is its docstring: importing ui.brush.state must not build windows."""
    for init in UI.glob("*/__init__.py"):
        tree = ast.parse(init.read_text())
        imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert imports == [], init


def test_pure_modules_import_without_tkinter() -> None:
    helpers = sorted(f"ui.helpers.{p.stem}" for p in (UI / "helpers").glob("*.py") if p.stem != "__init__")
    modules = helpers + list(PURE_ELSEWHERE)
    code = f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\nprint('tkinter' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stderr
