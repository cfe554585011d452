"""Data for the classifier: image folders, masks on disk, and the demo shortcut benchmark.

The names below are loaded on first use (PEP 562), so ``from datasets import DatasetError`` or
``import datasets.atomic_files`` does not import torch; ``from datasets import ImageFolderData`` does.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOME = {
    "DEFAULT_MAX_PIXELS": "image_loading",
    "DataSplits": "splits",
    "DatasetError": "errors",
    "DemoInfo": "demo",
    "GREEN": "masks",
    "ImageFolderData": "image_folder",
    "MaskStore": "masks",
    "RED": "masks",
    "Sample": "image_folder",
    "SampleBatch": "image_folder",
    "build_demo_data": "demo",
    "check_masks_outside": "image_folder",
    "class_folders": "image_folder",
    "class_mismatch": "image_folder",
    "default_demo_dir": "demo",
    "ensure_demo_data": "demo",
    "load_splits": "splits",
    "make_demo_data": "demo",
    "mask_path": "masks",
    "read_mask": "masks",
    "read_mask_meta": "masks",
    "stack_samples": "image_folder",
    "write_mask": "masks",
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
