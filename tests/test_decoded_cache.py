"""The decoded-image cache (datasets.decoded_cache) behind ImageFolderData.cache_decoded."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from datasets import ImageFolderData
from datasets.decoded_cache import cache_bytes


def _photos(root, n=6, size=(48, 36)):
    generator = np.random.default_rng(0)
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = generator.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
    return root


def test_cached_samples_equal_freshly_decoded_ones(tmp_path):
    data = ImageFolderData(_photos(tmp_path / "data"), 24, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    fresh = [data[i].image for i in range(len(data))]
    assert data.cache_decoded(max_bytes=10**6)
    for _ in range(2):  # first pass fills, second reads
        for i in range(len(data)):
            assert torch.equal(data[i].image, fresh[i])
    assert bool(data.decoded_cache.filled.all())


def test_cache_refused_over_budget_and_not_inherited_by_subsets(tmp_path):
    data = ImageFolderData(_photos(tmp_path / "data"), 24, (0.5,) * 3, (0.25,) * 3)
    assert not data.cache_decoded(max_bytes=cache_bytes(len(data), 24) - 1)
    assert data.decoded_cache is None
    assert data.cache_decoded(max_bytes=cache_bytes(len(data), 24))
    assert data.subset([0, 1]).decoded_cache is None  # its positions are not the parent's


def test_workers_fill_one_shared_cache(tmp_path):
    data = ImageFolderData(_photos(tmp_path / "data"), 24, (0.5,) * 3, (0.25,) * 3)
    assert data.cache_decoded(max_bytes=10**6, shared=True)
    for _ in DataLoader(data, batch_size=2, num_workers=2):
        pass
    assert bool(data.decoded_cache.filled.all())  # written by the workers, seen here
