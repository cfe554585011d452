"""A session's story for people who will not open the app: one self-contained HTML report.

`write_report(session_folder, out)` gathers the facts (`session_facts.gather`) and renders them
(`html_report.render`). Sits on the floor of `app.run` (it reads sessions); the command line and
the desktop app call it. The names below are loaded on first use (PEP 562), as in `app.engine`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOME = {
    "SessionFacts": "session_facts",
    "gather": "session_facts",
    "render": "html_report",
    "write_report": "html_report",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """The public `name`, imported from its module on first use and kept."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
