"""Images/s the data loader delivers at 224 px: worker processes, and the decoded-image cache.

Writes a folder of synthetic photo-like JPEGs (smooth colour fields plus grain, default
1600 x 1200), then iterates ``ImageFolderData`` through a ``DataLoader`` for two epochs per
setting (workers 0 / N, cache off / on) and prints images/s per epoch. The second epoch is
where the cache pays: the first decodes either way. Compare with what the GPU consumes
(bench/gpu_bench.py): a loader slower than the guided step leaves the GPU idle.

    python bench/data_loading.py                     # 160 images, workers 0 and 2
    python bench/data_loading.py --images 400 --workers 0 4 8 --side 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from datasets import ImageFolderData  # noqa: E402


def write_photos(root: Path, n: int, width: int, height: int) -> None:
    generator = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(n):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        phase = generator.uniform(0, 6.28, 3)
        field = np.stack([127 + 100 * np.sin(xs / (150 + 40 * c) + ys / 220 + phase[c]) for c in range(3)], axis=-1)
        pixels = np.clip(field + generator.normal(0, 12, field.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)


def epoch_rates(root: Path, args, workers: int, cache: bool) -> list[float]:
    data = ImageFolderData(root, args.size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if cache:
        data.cache_decoded(max_bytes=2**34, shared=workers > 0)
    loader = DataLoader(data, batch_size=32, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    rates = []
    for _ in range(2):
        started = time.perf_counter()
        for _batch in loader:
            pass
        rates.append(len(data) / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--side", type=int, default=1600, help="photo width (height 3/4 of it)")
    parser.add_argument("--size", type=int, default=224, help="model input side")
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_photos(root, args.images, args.side, args.side * 3 // 4)
        print(f"{args.images} JPEGs of {args.side} x {args.side * 3 // 4}, loaded at {args.size} px, batch 32")
        print("| workers | decoded-image cache | epoch 1 images/s | epoch 2 images/s |")
        print("|---|---|---|---|")
        for workers in args.workers:
            for cache in (False, True):
                first, second = epoch_rates(root, args, workers, cache)
                print(f"| {workers} | {'on' if cache else 'off'} | {first:.0f} | {second:.0f} |", flush=True)


if __name__ == "__main__":
    main()
