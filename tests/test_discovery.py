"""Tests for app/explain/discovery.py: the shortcut group comes first, on a model whose strategy is known.

The data: 16 x 16 images of two classes; class "b" has a bright grey square in the centre (the
object), class "a" a greenish one; a third of the "b" images also carry a small red patch
somewhere in the border (the shortcut). The model is built by hand: a 1 x 1 convolution with a
red detector (R - G - B, thresholded), a brightness detector and a green detector, averaged, and
a head whose class-b logit weighs the red detector 40 times the brightness. So on a patch image
the model decides by the patch (hiding it changes the prediction), elsewhere by the spread-out
centre.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from app.explain.discovery import discover
from datasets import ImageFolderData

SIDE = 16


def shortcut_model() -> nn.Module:
    conv = nn.Conv2d(3, 3, kernel_size=1)
    head = nn.Linear(3, 2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, 0, 0] = torch.tensor([4.0, -4.0, -4.0])  # red: fires where R >> G, B
        conv.bias[0] = -1.0
        conv.weight[1, :, 0, 0] = torch.tensor([1.0, 1.0, 1.0]) / 3  # brightness
        conv.bias[1] = -0.3
        conv.weight[2, :, 0, 0] = torch.tensor([-1.0, 2.0, -1.0])  # green: G above R and B
        conv.bias[2] = -0.2
        head.weight.copy_(torch.tensor([[-40.0, -4.0, 8.0], [40.0, 4.0, -8.0]]))
        head.bias.copy_(torch.tensor([1.0, -1.0]))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


@pytest.fixture
def shortcut_data(tmp_path):
    """(dataset, set of relpaths that carry the red patch)."""
    rng = np.random.default_rng(0)
    carrying = set()
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(24):
            pixels = rng.integers(0, 40, (SIDE, SIDE, 3)).astype(np.uint8)
            if label == "a":
                pixels[4:12, 4:12] = rng.integers(200, 256, (8, 8, 3)) * np.array([0.5, 1.0, 0.5])
            if label == "b":
                pixels[4:12, 4:12] = rng.integers(200, 256, (8, 8, 3))
                if i % 3 == 0:
                    row, col = [(0, 0), (0, 13), (13, 0), (13, 13), (6, 0), (0, 6)][i // 3 % 6]
                    pixels[row : row + 3, col : col + 3] = (255, 0, 0)
                    carrying.add(f"{label}/{i:02d}.png")
            Image.fromarray(pixels).save(tmp_path / label / f"{i:02d}.png")
    return ImageFolderData(tmp_path, SIDE, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), carrying


def test_the_shortcut_cluster_comes_first(shortcut_data):
    dataset, carrying = shortcut_data
    model = shortcut_model()
    found = discover(model, dataset, n_clusters=3)
    first = found.clusters[0]
    assert sum(r in carrying for r in first.relpaths) / first.size >= 0.8
    assert sum(r in carrying for r in first.relpaths) >= len(carrying) // 2
    assert first.drop > found.clusters[-1].drop
    assert first.class_counts == {"b": first.size} or next(iter(first.class_counts)) == "b"
    assert [c.rank for c in found.clusters] == list(range(len(found.clusters)))
    assert sum(c.size for c in found.clusters) == len(dataset)
    assert "images" in first.describe() and "drops the class by" in first.describe()
    assert first.mean_map.shape == (SIDE, SIDE) and float(first.mean_map.max()) == pytest.approx(1.0)
    assert not model.training


def test_per_image_evidence_ranks_patch_images_above_the_rest(shortcut_data):
    dataset, carrying = shortcut_data
    found = discover(shortcut_model(), dataset, n_clusters=2)
    evidence = found.images.evidence
    carries = torch.tensor([dataset.relpaths[i] in carrying for i in found.images.indices])
    assert float(evidence[carries].min()) > float(evidence[~carries].max())


def test_json_lists_clusters_with_size_class_mix_and_heatmap(shortcut_data):
    dataset, _ = shortcut_data
    payload = discover(shortcut_model(), dataset, n_clusters=2, pool_size=20).to_json()
    assert payload["n_images"] == 20 and payload["method"] == "gradcam"
    cluster = payload["clusters"][0]
    assert {"size", "class_counts", "mean_map", "focus", "drop", "shortcut_score", "examples", "description"} <= set(cluster)
    assert sum(c["size"] for c in payload["clusters"]) == 20


def test_stop_and_progress(shortcut_data):
    dataset, _ = shortcut_data
    seen = []
    assert discover(shortcut_model(), dataset, should_stop=lambda: True) is None
    discover(shortcut_model(), dataset, n_clusters=2, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(dataset), len(dataset))
