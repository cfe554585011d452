"""Models: the factory, the small CNN, the Grad-CAM target layer, the classifier head, and the device choice.

The names below are loaded on first use (PEP 562): ``from models import MODEL_NAMES`` reads the
torch-free ``models.specs``, ``from models import build_model`` imports torch and torchvision.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import Any

_HOME = {
    "MODEL_NAMES": "specs",
    "DeviceError": "device",
    "ModelSpec": "specs",
    "SmallCNN": "small_cnn",
    "UnknownModelError": "specs",
    "WeightsError": "weights",
    "build_model": "factory",
    "classifier_head": "classifier_head",
    "device_label": "device",
    "finer_gradcam_layer": "gradcam_layer",
    "gradcam_layer": "gradcam_layer",
    "load_matching_weights": "weights",
    "model_spec": "specs",
    "pick_device": "device",
    "scale_head": "classifier_head",
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


class _Face(ModuleType):
    """`models.gradcam_layer` and `models.classifier_head` are functions named like their modules.

    Loading a submodule binds it on this package (`models.gradcam_layer = <module>`), which would
    hide the function from `from models import gradcam_layer`; the function is bound instead.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and _HOME.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Face
