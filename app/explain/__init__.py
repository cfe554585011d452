"""Explanations and the choices built on them: saliency maps, how reasonable an explanation is
against painted masks, which images a feedback round shows, and where painted content sits in
the other images (propagation). Imports datasets, models, loss and `app.errors` only.

The names below are loaded on first use (PEP 562): the option lists come from the torch-free
`options`, `from app.explain import select_images` imports torch (and captum) with `selection`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOME = {
    "DEFAULT_SALIENCY_METHOD": "options",
    "SALIENCY_METHODS": "options",
    "SCOPES": "options",
    "SELECTION_STRATEGIES": "options",
    "Choice": "selection",
    "PropagationPlan": "propagation",
    "ReasonabilityMatrix": "reasonability",
    "apply_propagation": "propagation",
    "gradient_saliency": "explanation_metrics",
    "mass_share": "explanation_metrics",
    "plan_propagation": "propagation",
    "propagate": "propagation",
    "reasonability_matrix": "reasonability",
    "select_images": "selection",
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
