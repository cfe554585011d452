"""Tests for app/explain/reasonability.py: the unreasonable score's parts and GRADIA's matrix."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import nn

from app.explain.reasonability import (
    CELLS,
    ExplanationPriors,
    ReasonabilityThresholds,
    class_agnostic_map,
    judge_reasonable,
    mask_priors,
    reasonability_matrix,
    required_green_share,
    saliency_distribution,
    tabulate,
    unreasonable_scores,
)
from datasets import ImageFolderData, MaskStore


class InkModel(nn.Module):
    """logit_k = sum_j w_kj * x_j^2: the input gradient of class k is 2 w_k * x, so with the
    weights below a class's saliency is exactly where its own half of the image has ink."""

    def __init__(self, side: int):
        super().__init__()
        weight = torch.zeros(2, 3, side, side)
        weight[0, :, :, : side // 2] = 1.0  # class 0 looks at the left half
        weight[1, :, :, side // 2 :] = 1.0  # class 1 at the right half
        self.weight = nn.Parameter(weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images.pow(2).unsqueeze(1) * self.weight).flatten(2).sum(2)


def test_saliency_distribution_sums_to_one_and_keeps_zero_maps():
    saliency = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    result = saliency_distribution(saliency)
    assert torch.allclose(result[0], torch.tensor([[0.25, 0.75], [0.0, 0.0]]))
    assert torch.equal(result[1], torch.zeros(2, 2))


def test_class_agnostic_map_keeps_only_the_region_every_class_looks_at():
    # class 0: half its mass on the corner (0, 0), half on (1, 0); class 1: corner and (1, 1)
    corner_and = lambda other: torch.tensor([[0.5, 0.0], [0.5 * (other == 0), 0.5 * (other == 1)]])
    distributions = torch.stack([corner_and(0), corner_and(0), corner_and(1), corner_and(1)])
    weight = class_agnostic_map(distributions, torch.tensor([0, 0, 1, 1]))
    assert torch.equal(weight, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_class_agnostic_map_weighs_by_agreement_between_classes():
    # pixel A: class means 0.4 and 0.2 -> min 0.2, agreement 0.5 -> 0.1; pixel B: 0.2 and 0.2 -> 0.2
    a = torch.tensor([[0.4, 0.2, 0.4, 0.0]]).view(1, 2, 2)
    b = torch.tensor([[0.2, 0.2, 0.0, 0.6]]).view(1, 2, 2)
    weight = class_agnostic_map(torch.cat([a, a, b, b]), torch.tensor([0, 0, 1, 1]))
    assert torch.allclose(weight, torch.tensor([[0.5, 1.0], [0.0, 0.0]]))


def test_class_agnostic_map_needs_two_classes_with_enough_images():
    distributions = saliency_distribution(torch.rand(3, 4, 4))
    assert class_agnostic_map(distributions, torch.tensor([0, 0, 1])) is None  # class 1 has one image
    assert class_agnostic_map(distributions, torch.tensor([0, 0, 1]), min_images=1) is not None


def test_mask_priors_union_of_red_and_green_per_class_with_fallback():
    masks = torch.zeros(3, 2, 3)
    masks[0, 0, 0] = 1  # red, class 0
    masks[1, 1, 2] = 1  # red, class 1
    masks[0, 1, 1] = -1  # green, class 0
    masks[2, 0, 2] = -1  # green, class 1
    forbidden, objects = mask_priors(masks, [0, 1, 1], num_classes=3)
    assert torch.equal(forbidden, torch.tensor([[1.0, 0, 0], [0, 0, 1]]))
    assert torch.equal(objects[0], torch.tensor([[0.0, 0, 0], [0, 1, 0]]))
    assert torch.equal(objects[1], torch.tensor([[0.0, 0, 1], [0, 0, 0]]))
    # class 2 has no annotated image: the union of every class's green
    assert torch.equal(objects[2], torch.tensor([[0.0, 0, 1], [0, 1, 0]]))


def test_mask_priors_without_red_or_green():
    assert mask_priors(torch.zeros(0, 2, 2), [], 2) == (None, None)
    forbidden, objects = mask_priors(torch.zeros(1, 2, 2), [0], 2)
    assert forbidden is None and objects is None


def test_unreasonable_scores_take_the_largest_share_and_name_it():
    distributions = torch.tensor(
        [
            [[0.6, 0.1], [0.3, 0.0]],  # 0.6 on the common corner
            [[0.1, 0.7], [0.2, 0.0]],  # 0.7 on forbidden (0, 1)
            [[0.0, 0.0], [0.1, 0.9]],  # on the object (1, 1) of class 1 only: off-object 0.1
        ]
    )
    priors = ExplanationPriors(
        common=torch.tensor([[1.0, 0.0], [0.0, 0.0]]),
        forbidden=torch.tensor([[0.0, 1.0], [0.0, 0.0]]),
        objects=torch.tensor([[[0.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]),
    )
    result = unreasonable_scores(distributions, torch.tensor([0, 0, 1]), priors)
    assert torch.allclose(result.components["common"], torch.tensor([0.6, 0.1, 0.0]))
    assert torch.allclose(result.components["forbidden"], torch.tensor([0.1, 0.7, 0.0]))
    assert torch.allclose(result.components["off_object"], torch.tensor([0.7, 0.8, 0.1]))
    # focused: 1-pixel windows on a 2 x 2 map, above an even spread's 0.25: (max - 0.25) / 0.75
    assert torch.allclose(result.components["focused"], torch.tensor([0.35, 0.45, 0.65]) / 0.75)
    assert torch.allclose(result.score, torch.tensor([0.7, 0.8, 0.65 / 0.75]))
    assert result.cause == ("off_object", "off_object", "focused")
    assert result.reason(1) == "saliency off the object: 80 %"

    common_only = unreasonable_scores(distributions, torch.tensor([0, 0, 1]), ExplanationPriors(common=priors.common))
    assert common_only.cause == ("common", "focused", "focused")
    assert math.isnan(float(common_only.components["forbidden"][0]))
    assert common_only.reason(0) == "saliency on a region salient across classes: 60 %"


def test_without_priors_only_the_position_free_focus_is_scored():
    even = torch.full((2, 10, 10), 0.01)
    result = unreasonable_scores(even, torch.tensor([0, 1]), ExplanationPriors())
    assert torch.allclose(result.score, torch.zeros(2), atol=1e-6)
    assert all(math.isnan(float(result.components[name][0])) for name in ("forbidden", "common", "off_object"))
    assert result.cause == ("focused", "focused")
    empty = unreasonable_scores(torch.zeros(0, 3, 3), torch.zeros(0, dtype=torch.long), ExplanationPriors())
    assert empty.score.numel() == 0


def test_judge_reasonable_by_mask_and_by_heuristic():
    saliency = torch.zeros(5, 2, 2)
    saliency[:, 0, 0] = torch.tensor([1.0, 1.0, 3.0, 1.0, 1.0])  # red pixel when marked
    saliency[:, 1, 1] = torch.tensor([9.0, 1.0, 1.0, 1.0, 1.0])  # green pixel when marked
    masks = torch.zeros(5, 2, 2)
    masks[:3, 0, 0] = 1
    masks[:3, 1, 1] = -1
    has_mask = torch.tensor([True, True, True, False, False])
    heuristic = torch.tensor([0.0, 0.0, 0.0, 0.7, 0.3])
    reasonable = judge_reasonable(
        saliency, masks, has_mask, heuristic, ReasonabilityThresholds(red_share=0.2, green_lift=2.0, score=0.5)
    )
    # 0: red 0.1, green 0.9 (>= 2 x 25 %) -> reasonable; 1: red 0.5 -> no; 2: red 0.75 -> no;
    # 3: no mask, score 0.7 -> no; 4: no mask, score 0.3 -> yes
    assert reasonable.tolist() == [True, False, False, False, True]
    # without a heuristic, images without masks count as reasonable
    assert judge_reasonable(saliency, masks, has_mask, None).tolist()[3:] == [True, True]


def test_judge_reasonable_green_only_mask():
    saliency = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 1.0]]])
    masks = torch.zeros(2, 2, 2)
    masks[:, 1, 1] = -1
    reasonable = judge_reasonable(saliency, masks, torch.tensor([True, True]), None, ReasonabilityThresholds(green_lift=2.0))
    assert reasonable.tolist() == [False, True]  # 25 % (the green area's share: chance) vs 100 % on green


def test_green_must_hold_more_saliency_than_its_area_not_a_fixed_share():
    """A green object over half the image holding 55 % of the saliency is at chance, not on the
    object; a small one holding 30 % on 10 % of the image is three times chance."""
    big = torch.zeros(1, 10, 10)
    big[:, :5, :] = -1  # green: half the image
    small = torch.zeros(1, 10, 10)
    small[:, :1, :] = -1  # green: a tenth of the image
    masks = torch.cat([big, small])
    saliency = torch.ones(2, 10, 10)
    saliency[0, :5, :] = 1.22  # 55 % on green
    saliency[1, :1, :] = 3.86  # 30 % on green
    reasonable = judge_reasonable(saliency, masks, torch.tensor([True, True]), None)
    assert reasonable.tolist() == [False, True]
    required = required_green_share(masks, 2.0)
    assert torch.allclose(required, torch.tensor([0.75, 0.2]))  # capped halfway to 1; 2 x 10 %


def test_tabulate_counts_and_orders_members():
    relpaths = ["a", "b", "c", "d", "e"]
    correct = torch.tensor([True, True, False, False, True])
    reasonable = torch.tensor([True, False, True, False, False])
    matrix = tabulate(relpaths, correct, reasonable, order_key=torch.tensor([0.0, 0.2, 0.0, 0.0, 0.9]))
    assert matrix.counts == {
        "accurate_reasonable": 1,
        "accurate_unreasonable": 2,
        "inaccurate_reasonable": 1,
        "inaccurate_unreasonable": 1,
    }
    assert matrix.members["accurate_unreasonable"] == ("e", "b")
    assert matrix.count(accurate=False, reasonable=True) == 1
    assert matrix.n_images == 5
    assert set(matrix.members) == set(CELLS)


def _write_folder(root, images):
    """images: {relpath: HxW uint8 gray array} -> RGB PNGs under root."""
    for relpath, array in images.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.repeat(array[..., None], 3, axis=2)).save(path)


def test_reasonability_matrix_end_to_end(tmp_path):
    side = 8
    left, right, both = (np.zeros((side, side), np.uint8) for _ in range(3))
    left[2:6, 1:3] = 255
    right[2:6, 5:7] = 255
    both[2:6, 1:3] = 255
    both[2:6, 5:7] = 255
    # ink only on the left: class 0 sees it and wins; class 1 sees nothing and (tie -> 0) loses
    images = {"a/left.png": left, "a/both.png": both, "b/right.png": right, "b/left.png": left}
    _write_folder(tmp_path / "data", images)
    store = MaskStore(tmp_path / "masks")
    red_left = np.zeros((side, side), np.int8)
    red_left[:, :4] = 1
    store.save("a/left.png", red_left)  # class 0 looks only there: unreasonable
    store.save("b/right.png", red_left)  # class 1 looks right: none on red, reasonable
    data = ImageFolderData(tmp_path / "data", side, (0, 0, 0), (1, 1, 1), masks_dir=tmp_path / "masks")
    model = InkModel(side)
    matrix = reasonability_matrix(model, data, thresholds=ReasonabilityThresholds(red_share=0.2, score=0.5))
    assert matrix.n_images == 4
    # a/left: correct (tie -> class 0), all its saliency on its own red -> unreasonable by mask.
    # a/both: no mask; its saliency (left ink) lies on red painted in a/left -> unreasonable by
    # the heuristic. b/right: correct, none on red -> reasonable. b/left: class 1's saliency is
    # zero (no ink on the right), the prediction 0 is wrong, no evidence -> reasonable.
    assert set(matrix.members["accurate_unreasonable"]) == {"a/left.png", "a/both.png"}
    assert matrix.members["accurate_reasonable"] == ("b/right.png",)
    assert matrix.members["inaccurate_reasonable"] == ("b/left.png",)
    assert matrix.counts["inaccurate_unreasonable"] == 0
    assert set(matrix.judged_by_mask) == {"a/left.png", "b/right.png"}
    assert sum(matrix.counts.values()) == 4


def test_reasonability_matrix_can_be_cancelled(tmp_path):
    _write_folder(tmp_path / "data", {"a/x.png": np.zeros((8, 8), np.uint8), "b/y.png": np.zeros((8, 8), np.uint8)})
    data = ImageFolderData(tmp_path / "data", 8, (0, 0, 0), (1, 1, 1))
    assert reasonability_matrix(InkModel(8), data, should_stop=lambda: True) is None


def test_focus_share_is_the_same_wherever_the_spot_sits_and_low_for_a_spread():
    from app.explain.reasonability import focus_share

    spots = torch.zeros(3, 30, 30)
    for row, (y, x) in enumerate([(0, 0), (12, 20), (24, 3)]):  # a 4 x 4 spot, moving
        spots[row, y : y + 4, x : x + 4] = 1 / 16
    focused = focus_share(spots)
    assert torch.allclose(focused, focused[0].expand(3)) and float(focused[0]) > 0.95
    spread = torch.full((1, 30, 30), 1 / 900)
    assert float(focus_share(spread)[0]) < 1e-6
