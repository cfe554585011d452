"""`main.py --help` and the torch-free modules load no torch (issue 25).

The package faces (`app/*/__init__.py`, `models`, `loss`, `datasets`) import a public name's
module on first use, and the option lists live in torch-free leaves, so the command line's parser
and the protocol's messages and states are quick to import. Each check runs a fresh interpreter
(this process has torch loaded already); `bench/import_time.py` prints the times.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "captum")
FACES = ("datasets", "models", "loss", "app.explain", "app.engine", "app.run", "app.report")


def imported_modules(arguments: list[str]) -> set[str]:
    """Every module a fresh `python -X importtime ARGUMENTS` imports (it must exit 0)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in HEAVY)[:5]


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["train", "--help"], ["select", "--help"], ["propagate", "--help"], ["masks", "import", "--help"]],
    ids=" ".join,
)
def test_help_imports_no_torch(argv):
    modules = imported_modules(["main.py", *argv])
    assert "app.cli.main" in modules
    assert not heavy_in(modules)


def test_messages_states_and_configs_import_no_torch():
    modules = imported_modules(["-c", "import app.engine.config, app.run.messages, app.run.run_state"])
    assert "app.run.messages" in modules
    assert not heavy_in(modules)


@pytest.mark.parametrize("face", FACES)
def test_every_public_name_of_a_face_is_its_module_s(face):
    """`from face import name` gives the object its module defines, never a submodule, even after
    every submodule was imported directly (which binds them on the package)."""
    package = import_module(face)
    for path in sorted(Path(package.__file__).parent.glob("*.py")):
        if path.stem != "__init__":
            import_module(f"{face}.{path.stem}")
    for name in package.__all__:
        value = getattr(package, name)
        assert not isinstance(value, ModuleType), f"{face}.{name} is a module"
        assert value is getattr(import_module(f"{face}.{package._HOME[name]}"), name)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError):
        package.no_such_name  # noqa: B018


def test_option_lists_are_the_ones_acted_on():
    """The torch-free lists name exactly what the modules acting on them accept."""
    from app.explain.selection import RANKERS
    from loss import GUIDANCE_NAMES, build_guidance
    from models import SmallCNN

    assert tuple(RANKERS) == import_module("app.explain").SELECTION_STRATEGIES
    for name in GUIDANCE_NAMES:
        build_guidance(name, SmallCNN(num_classes=2))


def test_every_command_handler_can_be_found():
    """The parser names each handler by module and function (`LazyHandler`): a typo there would
    only show when the command runs."""
    from app.cli.common import LazyHandler
    from app.cli.main import build_parser

    def handlers(parser: argparse.ArgumentParser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from handlers(sub)
        handler = parser.get_default("handler")
        if handler is not None:
            yield handler

    found = list(handlers(build_parser()))
    lazy = [handler for handler in found if isinstance(handler, LazyHandler)]
    assert len(lazy) >= 6  # discover, select, propagate, masks import/export, report
    for handler in lazy:
        assert callable(getattr(import_module(handler.module), handler.function)), handler


def test_the_desktop_app_s_modules_import_no_torch():
    """What `main.py` imports to open the app, the main window's modules included: the window shows
    before torch (seconds) is loaded; Train, the brush, Discover..., Import masks... and Report...
    load it when they need it."""
    modules = imported_modules(["-c", "import main, ui.desktop"])
    assert "ui.main_window.window" in modules
    assert not heavy_in(modules)


@pytest.mark.gui
def test_the_desktop_app_s_window_shows_without_torch(x_display, tmp_path):
    """`main.py` with no command, on a display, up to its window's first update (its main loop
    replaced): nothing of torch is loaded by then (it opens a session's checkpoint afterwards)."""
    shown = (
        "import sys, main\n"
        "from ui.main_window.window import MainWindow\n"
        "def shown(window):\n"
        f"    print('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        "    window.root.destroy()\n"
        "MainWindow.mainloop = shown\n"
        "main.main([])\n"
    )
    env = {**os.environ, "DISPLAY": x_display, "XDG_DATA_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", shown], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.rsplit("loaded:", 1)[1].strip() == ""
