"""Data for the classifier: image folders, masks on disk, and the demo shortcut benchmark."""

from .demo import DemoInfo, build_demo_data, default_demo_dir, ensure_demo_data, make_demo_data
from .errors import DatasetError
from .image_folder import (
    ImageFolderData,
    Sample,
    SampleBatch,
    check_masks_outside,
    class_folders,
    class_mismatch,
    stack_samples,
)
from .image_loading import DEFAULT_MAX_PIXELS
from .masks import GREEN, RED, MaskStore, mask_path, read_mask, read_mask_meta, write_mask
from .splits import DataSplits, load_splits

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DataSplits",
    "DatasetError",
    "DemoInfo",
    "GREEN",
    "ImageFolderData",
    "MaskStore",
    "RED",
    "Sample",
    "SampleBatch",
    "check_masks_outside",
    "class_folders",
    "class_mismatch",
    "build_demo_data",
    "default_demo_dir",
    "ensure_demo_data",
    "load_splits",
    "stack_samples",
    "make_demo_data",
    "mask_path",
    "read_mask",
    "read_mask_meta",
    "write_mask",
]
