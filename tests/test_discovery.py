"""Tests for app/explain/discovery.py: the shortcut group comes first, on a model whose strategy is known.

The data and the model: `tests/shortcut_images.py` (a third of class b's images carry a red
patch the hand-built model decides by).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.explain.discovery import discover
from tests.shortcut_images import SIDE, make_shortcut_data, shortcut_model


@pytest.fixture
def shortcut_data(tmp_path):
    return make_shortcut_data(tmp_path)


def test_the_shortcut_cluster_comes_first(shortcut_data):
    dataset, carrying = shortcut_data
    model = shortcut_model()
    found = discover(model, dataset, n_clusters=3)
    first = found.clusters[0]
    assert sum(r in carrying for r in first.relpaths) / first.size >= 0.8
    assert sum(r in carrying for r in first.relpaths) >= len(carrying) // 2
    assert first.drop > found.clusters[-1].drop
    assert first.class_counts == {"b": first.size}
    assert [c.rank for c in found.clusters] == list(range(len(found.clusters)))
    assert sum(c.size for c in found.clusters) == len(dataset)
    assert first.describe().startswith(f"{first.size} images, all class b; hiding the top 5 % of each map drops the class by")
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


def test_shared_look_lights_what_sets_the_group_apart_from_its_class(shortcut_data):
    """The patch group's images differ from the rest of class b at the patch places only (same
    object, same noise), so `shared_look` puts its mass there; JSON carries it."""
    dataset, carrying = shortcut_data
    found = discover(shortcut_model(), dataset, n_clusters=3)
    first = found.clusters[0]
    places = np.zeros((SIDE, SIDE), dtype=bool)
    for row, col in [(0, 0), (0, 13), (13, 0), (13, 13), (6, 0), (0, 6)]:
        places[row : row + 3, col : col + 3] = True
    look = first.shared_look
    assert look.shape == (SIDE, SIDE) and 0.0 <= float(look.min()) <= float(look.max()) <= 1.0
    assert max(float(c.shared_look.max()) for c in found.clusters) == pytest.approx(1.0)  # one scale for all
    lift = (look[places].sum() / look.sum()) / places.mean()
    assert lift > 2.0  # 2.4 measured; a look that ignores the patch places gives about 1
    assert found.to_json()["clusters"][0]["shared_look"] == np.round(look, 3).tolist()


def test_a_group_that_is_its_whole_class_is_compared_with_the_rest_of_the_pool(shortcut_data):
    dataset, _ = shortcut_data
    found = discover(shortcut_model(), dataset, n_clusters=1)  # one group per class: no others in the class
    assert all(c.shared_look is not None and np.isfinite(c.shared_look).all() for c in found.clusters)
