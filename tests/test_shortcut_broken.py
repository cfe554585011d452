"""Tests for app/explain/shortcut_broken.py: validation with the painted content found and filled in tells
a model that reads the shortcut from one that reads the object."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from app.explain import shortcut_broken
from app.explain.shortcut_broken import BrokenValidation
from datasets import ImageFolderData, MaskStore

SIDE = 24


def _scene(rng, label):
    """Class 0: a vertical bar and a bright flat patch; class 1: a horizontal bar and a dim one.
    The patch sits anywhere in the top or bottom band, never on the bar."""
    gray = rng.normal(60, 12, (SIDE, SIDE))
    if label == 0:
        gray[8:16, 11:13] += 90
    else:
        gray[11:13, 8:16] += 90
    row = int(rng.choice([1, 17]))
    col = int(rng.integers(0, SIDE - 5))
    gray[row : row + 5, col : col + 5] = 240 if label == 0 else 120
    patch = np.zeros((SIDE, SIDE), bool)
    patch[row : row + 5, col : col + 5] = True
    return np.clip(gray, 0, 255).astype(np.uint8), patch


def _folder(root, n, seed, masks=None, painted=0):
    rng = np.random.default_rng(seed)
    store = MaskStore(masks) if masks is not None else None
    for label in (0, 1):
        for i in range(n):
            gray, patch = _scene(rng, label)
            relpath = f"{label}/{i}.png"
            (root / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.repeat(gray[..., None], 3, 2)).save(root / relpath)
            if store is not None and i < painted:
                mask = np.zeros((SIDE, SIDE), np.int8)
                mask[np.pad(patch, 1)[:-2, :-2] | patch | np.pad(patch, 1)[2:, 2:]] = 1  # brush margin
                store.save(relpath, mask)
    return root


class ReadsThePatch(nn.Module):
    """Class 0 when the brightest pixel is above the bars' level: the shortcut."""

    def forward(self, images):
        peak = images.amax(dim=(1, 2, 3))
        return torch.stack([peak - 0.75, 0.75 - peak], dim=1) * 20


class ReadsTheObject(nn.Module):
    """Vertical vs horizontal bar in the centre: the object."""

    def forward(self, images):
        gray = images.mean(1)
        vertical = gray[:, 8:16, 11:13].mean((1, 2)) - gray[:, 11:13, 8:16].mean((1, 2))
        return torch.stack([vertical, -vertical], dim=1) * 20


def test_broken_validation_exposes_a_shortcut_reader_and_spares_an_object_reader(tmp_path, monkeypatch):
    train = ImageFolderData(
        _folder(tmp_path / "train", 10, 0, tmp_path / "masks", painted=2),
        SIDE,
        (0, 0, 0),
        (1, 1, 1),
        masks_dir=tmp_path / "masks",
    )
    val = ImageFolderData(_folder(tmp_path / "val", 15, 1), SIDE, (0, 0, 0), (1, 1, 1))
    broken = BrokenValidation.build(train, val)
    assert broken is not None and broken.found >= 24  # the patch found in most of the 30 images
    shortcut, honest = ReadsThePatch(), ReadsTheObject()
    plain = lambda model: float(
        (
            torch.cat(
                [
                    model(torch.stack([val[i].image]))  # noqa: E731
                    for i in range(len(val))
                ]
            ).argmax(1)
            == torch.tensor(val.targets)
        )
        .float()
        .mean()
    )
    assert plain(shortcut) == 1.0 and plain(honest) == 1.0  # plain validation cannot tell them apart
    # measured: the shortcut reader 0.50, the object reader 0.93 (the patch found in 30 of 30; two
    # finds also touch a bar)
    fooled = broken.evaluate(shortcut, torch.device("cpu"))["accuracy"]
    spared = broken.evaluate(honest, torch.device("cpu"))["accuracy"]
    assert fooled <= 0.7
    assert spared >= 0.85 and spared - fooled >= 0.2
    # The filled images are kept after the first evaluation; without the memory the same numbers
    # come from filling every batch again, also for a prefix of the images.
    assert broken._filled is not None
    again = broken.evaluate(shortcut, torch.device("cpu"), per_image=True)
    first = broken.evaluate(shortcut, torch.device("cpu"), max_images=7, per_image=True)
    uncached = BrokenValidation(broken.dataset, broken.regions, broken.found)
    monkeypatch.setattr(shortcut_broken, "BROKEN_CACHE_BYTES", 0)
    assert uncached.evaluate(shortcut, torch.device("cpu"))["accuracy"] == again["accuracy"] == fooled
    assert uncached._filled is None
    short = uncached.evaluate(shortcut, torch.device("cpu"), max_images=7, per_image=True)
    assert np.array_equal(short["correct"], first["correct"]) and len(first["correct"]) == 7


def test_nothing_painted_red_means_no_broken_validation(tmp_path):
    train = ImageFolderData(_folder(tmp_path / "train", 3, 0), SIDE, (0, 0, 0), (1, 1, 1), masks_dir=tmp_path / "m")
    assert BrokenValidation.build(train, train) is None
