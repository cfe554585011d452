"""Tests for app/run/display_items.py: what the windows show of the model, built from a tiny linear
model whose predictions are known by hand and a fake training split (no image files, no display)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from app.explain.propagation import PropagationPlan
from app.run import display_items
from app.run import messages as msg

CPU = torch.device("cpu")


class FakeMasks:
    """The parts of a MaskStore the display items read."""

    def __init__(self, masks):
        self.masks = masks

    def has(self, relpath):
        return relpath in self.masks

    def load_array(self, relpath):
        return self.masks.get(relpath)


class FakeSplit:
    """A training split of 1 x 2 x 2 images: image k is bright (k + 1) in pixel (0, 0) for class
    0 or in pixel (1, 1) for class 1."""

    classes = ["left", "right"]

    def __init__(self, targets, masks=None):
        self.targets = list(targets)
        self.relpaths = [f"{self.classes[t]}/{k}.png" for k, t in enumerate(self.targets)]
        self.masks = FakeMasks(masks or {})
        self.displayed = []

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        image = torch.zeros(1, 2, 2)
        row = self.targets[index]
        image[0, row, row] = float(index + 1)
        return image, self.targets[index], torch.zeros(2, 2), False

    def index_of(self, relpath):
        return self.relpaths.index(relpath)

    def display_image(self, index, max_side):
        self.displayed.append((index, max_side))
        return np.full((3, 5, 3), index, dtype=np.uint8)


def pixel_model(scale=1.0):
    """logits = scale * (pixel (0, 0), pixel (1, 1)): class 0 for a bright top left, 1 for bottom right."""
    linear = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(scale * torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), linear)


def test_predictions_are_the_argmax_and_its_softmax_in_eval_mode():
    model = pixel_model().train()
    images = torch.zeros(2, 1, 2, 2)
    images[0, 0, 0, 0] = 2.0  # logits (2, 0)
    images[1, 0, 1, 1] = 1.0  # logits (0, 1)
    predicted, confidence = display_items.predictions(model, images)
    assert predicted == [0, 1]
    assert confidence == pytest.approx([1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(-1.0))])
    assert not model.training  # dropout off: what is shown is what eval computes


def test_feedback_items_carry_prediction_saliency_mask_and_reason():
    mask = np.ones((5, 3), dtype=np.int8)
    train = FakeSplit([0, 1, 1], masks={"right/2.png": mask})
    items = display_items.feedback_items(
        pixel_model(), train, [2, 0], ["first reason", "second"], device=CPU, saliency_method="saliency"
    )
    assert [i.relpath for i in items] == ["right/2.png", "left/0.png"]
    assert [(i.true_label, i.predicted_label) for i in items] == [("right", "right"), ("left", "left")]
    assert [i.reason.split("; ")[0] for i in items] == ["first reason", "second"]
    # each reason ends with the map's faithfulness hint (app.explain.faithfulness)
    assert all("; hiding the top 5 % of the map" in i.reason for i in items)
    assert items[0].mask is mask and items[1].mask is None
    assert items[0].saliency.shape == (2, 2)
    assert items[0].image.shape == (3, 5, 3) and items[0].image[0, 0, 0] == 2
    assert 0.5 < items[0].confidence <= 1.0
    assert display_items.feedback_items(pixel_model(), train, [], [], device=CPU, saliency_method="saliency") == []


def test_prepare_images_keeps_known_relpaths_in_order_and_lists_the_missing(monkeypatch):
    monkeypatch.setattr(display_items, "GALLERY_PAINT_MAX", 2)
    train = FakeSplit([0, 1, 0, 1])
    asked = ("right/3.png", "no/such.png", "left/0.png", "left/2.png")
    prepared = display_items.prepare_images(pixel_model(), train, asked, device=CPU, saliency_method="saliency")
    assert isinstance(prepared, msg.ImagesPrepared)
    assert [i.relpath for i in prepared.items] == ["right/3.png", "left/0.png"]  # the first 2 known
    assert prepared.missing == ("no/such.png",)
    assert all(i.reason.startswith("chosen by you; hiding the top") for i in prepared.items)
    nothing = display_items.prepare_images(pixel_model(), train, ("gone.png",), device=CPU, saliency_method="saliency")
    assert nothing.items == () and nothing.missing == ("gone.png",)


def test_describe_images_predicts_chunk_by_chunk_up_to_the_gallery_limit(monkeypatch):
    monkeypatch.setattr(display_items, "GALLERY_CHUNK", 2)
    monkeypatch.setattr(display_items, "GALLERY_MAX", 5)
    train = FakeSplit([0, 1, 0, 1, 1, 0, 0])
    described = display_items.describe_images(pixel_model(), train, device=CPU)
    assert described.n_train == 7
    assert [e.relpath for e in described.entries] == train.relpaths[:5]
    assert [e.predicted_label for e in described.entries] == [e.true_label for e in described.entries]
    # image k is (k + 1) bright: confidence sigmoid(k + 1)
    assert [e.confidence for e in described.entries] == pytest.approx([1 / (1 + np.exp(-(k + 1.0))) for k in range(5)])


def test_comparisons_show_painted_images_before_and_after(monkeypatch):
    monkeypatch.setattr(display_items, "COMPARISONS_MAX", 2)
    painted = {r: np.zeros((5, 3), np.int8) for r in ("left/0.png", "right/1.png", "left/2.png")}
    train = FakeSplit([0, 1, 0], masks=painted)
    flipped = pixel_model(scale=-1.0)  # the candidate predicts the other class everywhere
    result = SimpleNamespace(candidate=flipped, annotated_indices=[2])
    panels = display_items.comparisons(
        pixel_model(),
        result,
        train,
        ["right/1.png", "unpainted.png", "left/0.png", "left/2.png"],
        device=CPU,
        saliency_method="saliency",
    )
    assert [p.relpath for p in panels] == ["right/1.png", "left/0.png"]
    assert [(p.predicted_old, p.predicted_new) for p in panels] == [("right", "left"), ("left", "right")]
    assert panels[0].mask is painted["right/1.png"]
    assert panels[0].saliency_old.shape == panels[0].saliency_new.shape == (2, 2)


def test_comparisons_fall_back_to_the_images_the_finetune_used():
    train = FakeSplit([0, 1, 0], masks={"left/2.png": np.zeros((5, 3), np.int8)})
    result = SimpleNamespace(candidate=pixel_model(), annotated_indices=[2])
    panels = display_items.comparisons(pixel_model(), result, train, ["left/0.png"], device=CPU, saliency_method="saliency")
    assert [p.relpath for p in panels] == ["left/2.png"]
    nothing = SimpleNamespace(candidate=pixel_model(), annotated_indices=[])
    assert display_items.comparisons(pixel_model(), nothing, train, [], device=CPU, saliency_method="saliency") == ()


def test_preview_pages_reach_every_find():
    ranked = [f"r{k}" for k in range(10)]
    pages = [display_items.preview_page_relpaths(ranked, start, limit=4) for start in (0, 4, 8, 12)]
    assert pages == [["r0", "r1", "r2", "r3"], ["r4", "r5", "r6", "r7"], ["r8", "r9"], []]
    assert display_items.preview_page_relpaths([], 0, limit=4) == []


def test_preview_items_only_for_content_plans_that_found_something():
    train = FakeSplit([0, 1, 0])
    assert (
        display_items.preview_items(
            train, PropagationPlan(scope="all", sources=("left/0.png",), targets={"right/1.png": ("left/0.png",)})
        )
        == ()
    )
    assert display_items.preview_items(train, PropagationPlan(scope="content", sources=("left/0.png",), targets={})) == ()
    region = np.zeros((2, 2), dtype=bool)
    region[0, 0] = True
    plan = PropagationPlan(
        scope="content",
        sources=("left/0.png",),
        targets={"right/1.png": ("left/0.png",), "left/2.png": ("left/0.png",)},
        found={"right/1.png": (np.packbits(region), (2, 2)), "left/2.png": (np.packbits(region), (2, 2))},
        confidence={"right/1.png": 0.4, "left/2.png": 0.9},
    )
    items = display_items.preview_items(train, plan)
    assert [(i.relpath, i.confidence) for i in items] == [("left/2.png", 0.9), ("right/1.png", 0.4)]
    assert items[0].thumbnail.shape == (3, 5, 3) and items[0].region.shape == (3, 5)  # the found region, resized
    # Resized as every mask is (datasets.masks.resize_mask: nearest pixel centre): the top-left
    # pixel of 2 x 2 covers rows 0 (centre 0.33 of 2) and columns 0-1 (centres 0.2, 0.6) of 3 x 5.
    assert items[0].region[:1, :2].all() and not items[0].region[1:, :].any() and not items[0].region[:, 2:].any()
    assert {side for _, side in train.displayed} == {display_items.PREVIEW_SIDE}
