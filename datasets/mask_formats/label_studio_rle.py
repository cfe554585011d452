"""Label Studio's brush RLE: what its brush tool stores in `value.rle` of a `brushlabels` result.

It is not COCO's RLE but thi.ng's `rle-pack` bit stream over the brush canvas' RGBA bytes
(H x W x 4, row-major), read most significant bit first:

    32 bits  how many values follow (H * W * 4)
     5 bits  word size - 1 (bits per value, 8 for RGBA bytes)
    4 x 4    the four run-length field sizes - 1
    then records until every value is filled:
      1 bit  1: a run (one value repeated), 0: literal values
      2 bits which run-length field size to use
      n bits run length - 1
      then one value (a run) or run-length values (literals)

A pixel is painted where its alpha byte is non-zero (as label-studio-converter reads it). The
format has no library of its own outside Label Studio's converter (which pulls in the whole
Label Studio SDK), so it is decoded here, with every length checked: a stream that is cut short
or fills more values than it announced gets a DatasetError.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DatasetError


class _Bits:
    """Reads unsigned big-endian fields from a string of '0'/'1' characters."""

    def __init__(self, data: bytes, where: str):
        self.text = "".join(f"{byte:08b}" for byte in data)
        self.position = 0
        self.where = where

    def read(self, size: int) -> int:
        end = self.position + size
        if end > len(self.text):
            raise DatasetError(f"{self.where}: the brush RLE is cut short (it ends in the middle of a record).")
        value = int(self.text[self.position : end], 2)
        self.position = end
        return value


def decode_brush_rle(rle: Any, size: tuple[int, int], where: str) -> np.ndarray:
    """A Label Studio brush RLE (a list of byte values) as a bool H x W array (alpha > 0).

    size: (H, W), from the result's original_height / original_width. DatasetError when the
    stream is not a list of bytes, announces another number of values than H x W x 4, is cut
    short or overruns.
    """
    height, width = size
    if not isinstance(rle, list) or not rle:
        raise DatasetError(f"{where}: the brush 'rle' must be a non-empty list of byte values.")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in rle):
        raise DatasetError(f"{where}: the brush 'rle' must hold byte values (0 to 255) only.")
    bits = _Bits(bytes(rle), where)
    count = bits.read(32)
    expected = height * width * 4
    if count != expected:
        raise DatasetError(
            f"{where}: the brush RLE holds {count} values but a {height} x {width} image has {expected} "
            "(4 per pixel); it belongs to an image of another size, or the data is damaged."
        )
    word_size = bits.read(5) + 1
    run_sizes = [bits.read(4) + 1 for _ in range(4)]
    values = np.zeros(count, dtype=np.uint32)
    filled = 0
    while filled < count:
        is_run = bits.read(1)
        stop = filled + 1 + bits.read(run_sizes[bits.read(2)])
        if stop > count:
            raise DatasetError(
                f"{where}: the brush RLE overruns its image: a record reaches value {stop} of {count} ({height} x {width} x 4)."
            )
        if is_run:
            values[filled:stop] = bits.read(word_size)
        else:
            for index in range(filled, stop):
                values[index] = bits.read(word_size)
        filled = stop
    return values.reshape(height, width, 4)[..., 3] > 0
