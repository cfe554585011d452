"""Imports run one way: datasets -> models -> loss -> app.explain -> app.engine -> app.run ->
{app.cli, ui} -> main.py, and no module reaches back up, not even from inside a function.

The walk reads every import statement (module level or not) of every module with `ast`, so an
import tucked into a function to dodge a cycle fails here like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("datasets", "models", "loss", "app", "ui")

# Floor of each part of the code base; a module may import its own floor and those below.
# `app.errors` (what counts as the user's mistake) sits just above loss: every app floor uses it.
FLOORS: List[Tuple[str, int]] = [
    ("datasets", 0),
    ("models", 1),
    ("loss", 2),
    ("app.errors", 3),
    ("app.explain", 4),
    ("app.engine", 5),
    ("app.run", 6),
    ("app.report", 6),  # reads sessions (app.run); the command line and the ui call it
    ("app.cli", 7),
    ("ui", 7),
    ("main", 8),
]
SIDE_BY_SIDE = {"app.cli": "ui", "ui": "app.cli"}  # same floor, and neither may import the other


def floor_of(module: str) -> Tuple[str, int]:
    """(the part, its floor) of a dotted module name; the longest matching prefix wins."""
    best = ("", -1)
    for prefix, floor in FLOORS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best[0]):
            best = (prefix, floor)
    if module == "app":
        return "app", 3  # the package docstring only
    return best


def module_files() -> Dict[str, Path]:
    modules = {"main": ROOT / "main.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imported_modules(name: str, path: Path, known: Set[str]) -> Iterator[str]:
    """The project modules `name` imports: `from X import Y` counts as X.Y when that is a module."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in known or alias.name in known:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                yield candidate if candidate in known else target


def import_graph() -> Dict[str, Set[str]]:
    files = module_files()
    known = set(files)
    graph = {}
    for name, path in files.items():
        graph[name] = {m for m in imported_modules(name, path, known) if m in known and m != name}
    return graph


def test_every_module_has_a_floor():
    unplaced = [name for name in module_files() if floor_of(name)[1] < 0]
    assert not unplaced, f"modules outside the layer map: {unplaced}"


def test_imports_run_one_way():
    wrong = []
    for name, imports in import_graph().items():
        part, floor = floor_of(name)
        for target in imports:
            target_part, target_floor = floor_of(target)
            if target_floor > floor or SIDE_BY_SIDE.get(part) == target_part:
                wrong.append(f"{name} ({part}) imports {target} ({target_part})")
    assert not wrong, "imports that reach up a floor:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = import_graph()
    state: Dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: List[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(trail[trail.index(target) :] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_walk_sees_imports_inside_functions(tmp_path):
    """The checker itself: a function-level import is found, and a relative one resolved."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from .session import Session\n    import app.cli.main\n")
    found = set(imported_modules("app.run.m", module, {"app.run.session", "app.cli.main", "app"}))
    assert found == {"app.run.session", "app.cli.main"}


MAX_MODULE_LINES = 400  # issue 25: a module a reader takes in at one sitting; split by concept beyond


def test_no_module_is_longer_than_a_reader_takes_in():
    files = [ROOT / "main.py"] + [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}
