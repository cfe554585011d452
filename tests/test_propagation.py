"""Tests for app/explain/propagation.py: scopes, exact pixels at each target's size, meta, and the rules
(hand-painted masks are never touched, re-propagation replaces, green stays unless asked)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from app.errors import UserError
from app.explain.propagation import (
    PROPAGATED,
    apply_propagation,
    hand_painted,
    plan_propagation,
    propagate,
)
from app.run.mask_folder import MaskFolder
from datasets import ImageFolderData, MaskStore
from datasets.display import display_size
from datasets.masks import resize_mask

SIDE = 16


class InkModel(nn.Module):
    """logit_k = sum_j x_j^2: every class's input gradient is 2 x, so (mean 0, std 1) an image's
    saliency is exactly where it has ink."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.pow(2).flatten(1).sum(1, keepdim=True).repeat(1, 2)


def _save(root, relpath, gray):
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.repeat(np.asarray(gray, np.uint8)[..., None], 3, axis=2)).save(path)


def _ink(rows, cols, shape=(SIDE, SIDE)):
    gray = np.zeros(shape, np.uint8)
    gray[rows, cols] = 255
    return gray


@pytest.fixture
def folder(tmp_path):
    """Classes a and b; a/wide.png is 24 high x 32 wide, the rest 16 x 16."""
    root = tmp_path / "data"
    _save(root, "a/source.png", _ink(slice(0, 4), slice(0, 4)))  # ink in the top-left corner
    _save(root, "a/corner.png", _ink(slice(0, 4), slice(0, 4)))
    _save(root, "a/wide.png", _ink(slice(10, 14), slice(12, 20), shape=(24, 32)))  # ink in the middle
    _save(root, "b/corner.png", _ink(slice(1, 3), slice(1, 3)))
    _save(root, "b/middle.png", _ink(slice(6, 10), slice(6, 10)))
    _save(root, "b/painted.png", _ink(slice(0, 4), slice(0, 4)))
    return root


def _source_mask():
    """16 x 16: red over the top-left quarter of the top-left quarter, green in the middle."""
    mask = np.zeros((SIDE, SIDE), np.int8)
    mask[0:4, 0:4] = 1
    mask[6:10, 6:10] = -1
    return mask


@pytest.fixture
def store(tmp_path, folder):
    masks = MaskStore(tmp_path / "masks")
    masks.save("a/source.png", _source_mask(), meta={"source": "painted"})
    hand = np.zeros((SIDE, SIDE), np.int8)
    hand[15, 15] = 1
    masks.save("b/painted.png", hand)  # no meta at all: also hand-painted
    return masks


def _data(folder, masks_dir):
    return ImageFolderData(folder, SIDE, (0, 0, 0), (1, 1, 1), masks_dir=masks_dir)


def test_display_size_and_resize_nearest(folder):
    assert display_size(folder / "a/wide.png") == (24, 32)
    assert display_size(folder / "a/wide.png", max_side=16) == (12, 16)
    mask = np.array([[1, 0], [0, -1]], np.int8)
    assert resize_mask(mask, (4, 2)).tolist() == [[1, 0], [1, 0], [0, -1], [0, -1]]


def test_scope_all_writes_red_at_each_targets_size_with_meta(folder, store, tmp_path):
    data = _data(folder, tmp_path / "masks")
    result = propagate(data, ["a/source.png"], "all")
    assert result.written == 4  # every image but the source and the hand-painted one
    assert result.plan.relpaths == ["a/corner.png", "a/wide.png", "b/corner.png", "b/middle.png"]
    assert result.plan.skipped_hand_painted == ("b/painted.png",)

    square = store.load_array("b/middle.png")
    expected = np.zeros((SIDE, SIDE), np.int8)
    expected[0:4, 0:4] = 1  # red only: green stays with its own image
    assert np.array_equal(square, expected)

    wide = store.load_array("a/wide.png")
    assert wide.shape == (24, 32)  # the target's own size
    expected_wide = np.zeros((24, 32), np.int8)
    expected_wide[0:6, 0:8] = 1  # a quarter of each side, in normalised coordinates
    assert np.array_equal(wide, expected_wide)
    assert store.meta("a/wide.png") == {"source": PROPAGATED, "from": "a/source.png", "scope": "all"}


def test_hand_painted_masks_are_never_touched(folder, store, tmp_path):
    before = (tmp_path / "masks/b/painted.png").read_bytes()
    source_before = (tmp_path / "masks/a/source.png").read_bytes()
    propagate(_data(folder, tmp_path / "masks"), ["a/source.png"], "all")
    assert (tmp_path / "masks/b/painted.png").read_bytes() == before
    assert (tmp_path / "masks/a/source.png").read_bytes() == source_before
    assert hand_painted(store) == ["a/source.png", "b/painted.png"]


def test_preview_writes_nothing(folder, store, tmp_path):
    plan = plan_propagation(_data(folder, tmp_path / "masks"), ["a/source.png"], "all")
    assert plan.count == 4
    assert store.annotated() == ["a/source.png", "b/painted.png"]


def test_scope_class_picks_exactly_that_class(folder, store, tmp_path):
    data = _data(folder, tmp_path / "masks")
    plan = plan_propagation(data, ["a/source.png"], "class")
    assert plan.relpaths == ["a/corner.png", "a/wide.png"]
    assert plan.skipped_hand_painted == ()  # b/painted is of another class: not in scope
    apply_propagation(data, plan)
    assert store.annotated() == ["a/corner.png", "a/source.png", "a/wide.png", "b/painted.png"]


def test_scope_similar_follows_the_models_saliency(folder, store, tmp_path):
    data = _data(folder, tmp_path / "masks")
    plan = plan_propagation(data, ["a/source.png"], "similar", model=InkModel(), similar_share=0.5)
    # a/corner and b/corner have all their ink (= saliency) in the top-left corner (grown by
    # 1 px); a/wide and b/middle have none there; b/painted would be, but is hand-painted.
    assert plan.relpaths == ["a/corner.png", "b/corner.png"]
    assert plan.shares == {"a/corner.png": pytest.approx(1.0), "b/corner.png": pytest.approx(1.0)}
    assert plan.skipped_hand_painted == ("b/painted.png",)
    with pytest.raises(UserError, match="needs a model"):
        plan_propagation(data, ["a/source.png"], "similar")


def test_scope_similar_by_lift_over_the_average(tmp_path):
    """Saliency spread over the image: an absolute share never reaches 30 %, but the images
    that look at the corner more than the others do are found by the lift."""
    root = tmp_path / "data"
    centre = _ink(slice(6, 10), slice(6, 10))  # 16 pixels of ink in the middle
    corner = centre.copy()
    corner[0, 0] = 255  # plus one pixel in the top-left corner: share 1/17
    _save(root, "a/source.png", corner)
    for name in ("c1", "c2"):
        _save(root, f"a/{name}.png", corner)
    for name in ("m1", "m2", "m3"):
        _save(root, f"b/{name}.png", centre)
    masks = MaskStore(tmp_path / "masks")
    masks.save("a/source.png", _source_mask())
    data = _data(root, tmp_path / "masks")
    plan = plan_propagation(data, ["a/source.png"], "similar", model=InkModel())
    # mean share over the 5 candidates = 2/17/5; 1.2 x that = 0.028 <= 1/17
    assert plan.relpaths == ["a/c1.png", "a/c2.png"]
    assert plan.shares["a/c1.png"] == pytest.approx(1 / 17, rel=1e-4)
    assert plan_propagation(data, ["a/source.png"], "similar", model=InkModel(), similar_lift=None).count == 0
    with pytest.raises(UserError, match="lift must be above 1"):
        plan_propagation(data, ["a/source.png"], "similar", model=InkModel(), similar_lift=0.5)


def test_include_green_copies_green_too(folder, store, tmp_path):
    data = _data(folder, tmp_path / "masks")
    propagate(data, ["a/source.png"], "class", include_green=True)
    assert np.array_equal(store.load_array("a/corner.png"), _source_mask())


def test_several_sources_give_the_union_and_repropagation_replaces(folder, store, tmp_path):
    data = _data(folder, tmp_path / "masks")
    second = np.zeros((SIDE, SIDE), np.int8)
    second[12:16, 0:4] = 1
    store.save("b/corner.png", second, meta={"source": "painted"})
    propagate(data, ["a/source.png", "b/corner.png"], "all")
    union = np.zeros((SIDE, SIDE), np.int8)
    union[0:4, 0:4] = 1
    union[12:16, 0:4] = 1
    assert np.array_equal(store.load_array("b/middle.png"), union)
    assert store.meta("b/middle.png")["from"] == "a/source.png\nb/corner.png"

    # Propagating a/source again, to its class only: b/middle keeps b/corner's red but loses
    # a/source's; a/corner gets both (b/corner's earlier contribution is kept).
    result = propagate(data, ["a/source.png"], "class")
    only_second = np.zeros((SIDE, SIDE), np.int8)
    only_second[12:16, 0:4] = 1
    assert np.array_equal(store.load_array("b/middle.png"), only_second)
    assert store.meta("b/middle.png")["from"] == "b/corner.png"
    assert np.array_equal(store.load_array("a/corner.png"), union)
    assert set(store.meta("a/corner.png")["from"].split("\n")) == {"a/source.png", "b/corner.png"}
    assert result.removed == 0


def test_repropagation_deletes_masks_no_source_selects_any_more(folder, store, tmp_path):
    data = _data(folder, tmp_path / "masks")
    propagate(data, ["a/source.png"], "all")
    assert store.has("b/middle.png")
    result = propagate(data, ["a/source.png"], "class")
    assert result.removed == 2  # b/corner and b/middle
    assert not store.has("b/middle.png") and not store.has("b/corner.png")
    assert store.has("b/painted.png")


def test_writes_to_another_store_and_skips_what_is_painted_in_either(folder, store, tmp_path):
    data = _data(folder, tmp_path / "masks")
    out = MaskStore(tmp_path / "out")
    result = propagate(data, ["a/source.png"], "all", target_store=out)
    assert result.written == 4
    assert out.annotated() == ["a/corner.png", "a/wide.png", "b/corner.png", "b/middle.png"]
    assert store.annotated() == ["a/source.png", "b/painted.png"]


def test_bad_input(folder, store, tmp_path):
    data = _data(folder, tmp_path / "masks")
    with pytest.raises(UserError, match="unknown propagation scope"):
        plan_propagation(data, ["a/source.png"], "everywhere")
    with pytest.raises(UserError, match="has no mask"):
        plan_propagation(data, ["a/corner.png"], "all")
    with pytest.raises(UserError, match="at least one"):
        plan_propagation(data, [], "all")
    green_only = np.zeros((SIDE, SIDE), np.int8)
    green_only[5, 5] = -1
    store.save("a/corner.png", green_only)
    with pytest.raises(UserError, match="no red"):
        plan_propagation(data, ["a/corner.png"], "all")
    # Beside an image with red, a green-only one (no shortcut on it) is left out, not refused.
    plan = plan_propagation(data, ["a/corner.png", "a/source.png"], "all")
    assert plan.sources == ("a/source.png",) or list(plan.sources) == ["a/source.png"]
    with pytest.raises(ValueError, match="not in this data set"):
        plan_propagation(data, ["c/nothing.png"], "all")


def _stroke():
    """A hand-painted mask as the brush's autosaver writes it (no meta)."""
    mask = np.zeros((SIDE, SIDE), np.int8)
    mask[8, 8] = 1
    return mask


def test_a_stroke_saved_between_the_check_and_the_write_is_not_overwritten(folder, store, tmp_path):
    """The autosaver (another thread) saves a stroke just after propagation found no hand-painted
    mask there: the propagated write must not replace it."""
    data = _data(folder, tmp_path / "masks")
    plan = plan_propagation(data, ["a/source.png"], "all")

    class StrokeAfterCheck(MaskFolder):
        armed = True

        def has(self, relpath):
            answer = super().has(relpath)
            if relpath == "b/middle.png" and self.armed:  # the pre-write check has just answered
                self.armed = False
                self.save(relpath, _stroke())
            return answer

    target = StrokeAfterCheck(tmp_path / "masks")
    result = apply_propagation(data, plan, source_store=store, target_store=target)
    assert np.array_equal(target.load_array("b/middle.png"), _stroke())
    assert "source" not in target.meta("b/middle.png")
    assert result.written == 3  # a/corner, a/wide, b/corner


def test_a_stroke_saved_before_a_stale_mask_is_deleted_survives(folder, store, tmp_path):
    """Re-propagation deletes the masks no source selects any more, found by a scan before the
    targets are written; one painted by hand since the scan stays (a plain MaskStore here)."""
    data = _data(folder, tmp_path / "masks")
    propagate(data, ["a/source.png"], "all")
    plan = plan_propagation(data, ["a/source.png"], "class")  # b/corner and b/middle are stale

    def paint_while_writing(done, total):
        if done == 1:
            store.save("b/middle.png", _stroke())

    result = apply_propagation(data, plan, on_progress=paint_while_writing)
    assert np.array_equal(store.load_array("b/middle.png"), _stroke())
    assert not store.has("b/corner.png")
    assert result.removed == 1
