"""Decoded, resized images kept in memory, so epochs after the first skip decoding.

At 224 px a training image is 150 KB as 8-bit RGB (3 x 224 x 224), while decoding a
multi-megapixel JPEG and resizing it costs milliseconds of CPU per image, every epoch: with a
fast GPU that, not the model, sets the pace. The cache holds each image after the resize and
before normalisation (uint8), so cached and freshly decoded samples are bit-identical. It is one
preallocated ``N x 3 x S x S`` tensor, moved to shared memory when DataLoader workers fill it,
so all workers (forked after it is made) read and write the same copy: 10,000 images at 224 px
take 1.5 GB. docs/scaling.md has the measured speed-up (``bench/data_loading.py``).
"""

from __future__ import annotations

from typing import Optional

import torch


def cache_bytes(n_images: int, side: int) -> int:
    """Bytes a cache of ``n_images`` at ``side`` x ``side`` needs."""
    return n_images * 3 * side * side


class DecodedImageCache:
    """``n_images`` slots of 3 x side x side uint8; ``shared``: in shared memory for workers."""

    def __init__(self, n_images: int, side: int, shared: bool = False) -> None:
        self.pixels = torch.zeros(n_images, 3, side, side, dtype=torch.uint8)
        self.filled = torch.zeros(n_images, dtype=torch.bool)
        if shared:
            self.pixels.share_memory_()
            self.filled.share_memory_()

    def get(self, index: int) -> Optional[torch.Tensor]:
        """The cached 3 x S x S uint8 image at ``index``, or None."""
        return self.pixels[index] if bool(self.filled[index]) else None

    def put(self, index: int, pixels: torch.Tensor) -> None:
        self.pixels[index].copy_(pixels)
        self.filled[index] = True
