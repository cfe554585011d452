"""app/run/round_context.py: the trainer's helpers see the run through a narrow RoundContext, never
through the trainer (issue 25, item 2). The feedback round, the paint commands, the extra
validation and the display items reach no private member of anything but themselves."""

import ast
import dataclasses
from pathlib import Path

from app.run.round_context import RoundContext

ROOT = Path(__file__).resolve().parents[1]
HELPERS = ("feedback_round", "paint_commands", "extra_validation", "display_items", "round_context")


def _private_reaches(path: Path):
    """(line, text) of every `x._name` whose `x` is not `self` (dunders aside), and of every
    mention of a trainer."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                yield node.lineno, ast.unparse(node)
        if isinstance(node, ast.Name) and node.id in ("trainer", "Trainer"):
            yield node.lineno, node.id
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            if any("trainer" in name for name in names):
                yield node.lineno, ast.unparse(node)


def test_the_helpers_touch_no_private_member_of_the_trainer():
    found = {name: list(_private_reaches(ROOT / "app" / "run" / f"{name}.py")) for name in HELPERS}
    assert found == {name: [] for name in HELPERS}


def test_the_context_is_frozen_and_names_what_a_round_may_use():
    fields = {field.name for field in dataclasses.fields(RoundContext)}
    assert {"model", "data", "device", "config", "emit", "set_state", "wait"} <= fields
    assert RoundContext.__dataclass_params__.frozen
