"""Tests for app/explain/faithfulness.py: hiding a map's top region, on a model known by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from app.explain.faithfulness import hiding_effect, top_region


def pixel_model() -> nn.Module:
    """2 classes on 1 x 4 x 4 images: logit_1 = 10 x pixel (0, 0), logit_0 = 0."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[1, 0] = 10.0
        model[1].bias.zero_()
    return model


def test_top_region_keeps_the_highest_share_of_pixels():
    maps = torch.arange(16.0).reshape(1, 4, 4)
    region = top_region(maps, share=0.25)
    assert region.shape == (1, 4, 4) and int(region.sum()) == 4
    assert region[0, 3].all() and not region[0, :3].any()
    assert int(top_region(maps, share=0.0).sum()) == 1  # at least one pixel
    nan_map = torch.full((1, 2, 2), float("nan"))
    nan_map[0, 1, 1] = 0.0
    assert top_region(nan_map, share=0.25)[0, 1, 1]


def test_hiding_the_pixel_the_model_uses_drops_the_class_and_flips_it():
    images = torch.zeros(2, 1, 4, 4)
    images[:, 0, 0, 0] = 1.0  # class 1: sigmoid(10)
    on_pixel = torch.zeros(2, 4, 4)
    on_pixel[0, 0, 0] = 1.0  # image 0's map points at the pixel the model uses
    on_pixel[1, 3, 3] = 1.0  # image 1's map points elsewhere
    model = pixel_model().train()
    effect = hiding_effect(model, images, torch.tensor([1, 1]), on_pixel, share=1 / 16)
    before = torch.sigmoid(torch.tensor(10.0))
    assert effect.before == pytest.approx(torch.stack([before, before]))
    assert effect.after == pytest.approx(torch.tensor([0.5, float(before)]))
    assert effect.drop[0] == pytest.approx(float(before) - 0.5) and effect.drop[1] == pytest.approx(0.0)
    assert model.training  # the mode it was in
    assert effect.hint(0, ["a", "b"], 1) == "hiding the top 6 % of the map drops class b from 100 % to 50 % (now predicted a)"
    assert effect.hint(1, ["a", "b"], 1) == "hiding the top 6 % of the map drops class b from 100 % to 100 %"


def test_maps_at_another_size_are_resized():
    images = torch.zeros(1, 1, 4, 4)
    images[0, 0, 0, 0] = 1.0
    coarse = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    effect = hiding_effect(pixel_model(), images, torch.tensor([1]), coarse, share=1 / 16)
    assert float(effect.drop[0]) > 0.4
