"""Data for the classifier: image folders, masks on disk, and the demo shortcut benchmark."""

from .errors import DatasetError
from .image_loading import DEFAULT_MAX_PIXELS
from .masks import GREEN, RED, MaskStore, mask_path, read_mask, read_mask_meta, write_mask

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DatasetError",
    "GREEN",
    "MaskStore",
    "RED",
    "mask_path",
    "read_mask",
    "read_mask_meta",
    "write_mask",
]
