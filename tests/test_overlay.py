"""Heatmaps and paint overlays of `ui.helpers.overlay` (no display needed)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from ui.brush.strokes import GREEN, RED
from ui.helpers.overlay import (
    GREEN_RGB,
    RED_RGB,
    blend,
    heatmap_rgba,
    mask_overlay,
    mix,
    paint_outline,
    resize_saliency,
)


def test_heatmap_uses_the_colour_map_table():
    saliency = np.array([[0.0, 1.0], [0.5, 2.0]], np.float32)  # 2.0 is clipped to 1
    rgba = heatmap_rgba(saliency, cmap="viridis")
    table = matplotlib.colormaps["viridis"](np.linspace(0, 1, 256), bytes=True)
    assert rgba.dtype == np.uint8 and rgba.shape == (2, 2, 4)
    assert rgba[0, 0].tolist() == table[0].tolist()
    assert rgba[0, 1].tolist() == table[255].tolist()
    assert rgba[1, 0].tolist() == table[128].tolist()  # round(127.5) = 128
    assert rgba[1, 1].tolist() == table[255].tolist()
    assert (rgba[..., 3] == 255).all()


def test_the_heatmap_has_no_red_to_confuse_with_red_paint():
    """Issue 21: jet's red (decisive) clashed with the red paint (discourage)."""
    rgba = heatmap_rgba(np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :])[0, :, :3].astype(int)
    red, green, blue = rgba[:, 0], rgba[:, 1], rgba[:, 2]
    assert not ((red > 180) & (green < 100) & (blue < 100)).any()  # nowhere paint-like red
    low, high = rgba[0], rgba[-1]
    assert low[2] > low[1] and sum(low) < 250  # dark purple: ignored
    assert high[0] > 200 and high[1] > 200 and high[2] < 100  # yellow: decisive


def test_heatmap_is_resized_to_the_image_size():
    saliency = np.zeros((4, 4), np.float32)
    saliency[:, 2:] = 1.0
    rgba = heatmap_rgba(saliency, size=(8, 16), cmap="gray")
    assert rgba.shape == (8, 16, 4)
    assert rgba[3, 0, 0] == 0 and rgba[3, 15, 0] == 255  # left dark, right bright
    assert (np.diff(rgba[3, :, 0].astype(int)) >= 0).all()  # bilinear: a monotone ramp


def test_resize_saliency_handles_nan_and_range():
    out = resize_saliency(np.array([[np.nan, -1.0], [0.25, 3.0]]), (2, 2))
    assert out.dtype == np.float32 and out.tolist() == [[0.0, 0.0], [0.25, 1.0]]
    with pytest.raises(ValueError):
        resize_saliency(np.zeros((2, 2, 2)), (2, 2))


def test_blend_mixes_image_and_heatmap_by_opacity():
    image = np.full((2, 2, 3), 100, np.uint8)
    saliency = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    out = blend(image, saliency, 0.25, cmap="gray")  # gray: 0 -> black, 1 -> white
    assert out.dtype == np.uint8
    assert out[0, 0].tolist() == [75, 75, 75]  # 0.75 * 100 + 0.25 * 0
    assert out[0, 1].tolist() == [139, 139, 139]  # 0.75 * 100 + 0.25 * 255 = 138.75
    full = blend(image, saliency, 1.0, cmap="gray")
    assert full[..., 0].tolist() == [[0, 255], [255, 0]]


def test_blend_hidden_or_transparent_heatmap_is_the_image():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    saliency = np.random.default_rng(1).random((3, 3)).astype(np.float32)
    for out in (blend(image, saliency, 0.8, show_heatmap=False), blend(image, saliency, 0.0)):
        assert np.array_equal(out, image) and out is not image


def test_blend_rejects_non_rgb_images():
    with pytest.raises(ValueError):
        blend(np.zeros((4, 4), np.uint8), np.zeros((4, 4)), 0.5)


def test_mask_overlay_tints_only_marked_pixels():
    composite = np.full((2, 3, 3), 100, np.uint8)
    mask = np.array([[RED, 0, GREEN], [0, 0, 0]], np.int8)
    out = mask_overlay(composite, mask, alpha=0.5)
    expected_red = [round(50 + 0.5 * c) for c in RED_RGB]
    expected_green = [round(50 + 0.5 * c) for c in GREEN_RGB]
    assert out[0, 0].tolist() == expected_red == [178, 50, 50]
    assert out[0, 2].tolist() == expected_green == [50, 178, 50]
    assert (out[0, 1] == 100).all() and (out[1] == 100).all()
    assert (composite == 100).all()  # the input is untouched
    opaque = mask_overlay(composite, mask, alpha=1.0, red_rgb=(1, 2, 3))
    assert opaque[0, 0].tolist() == [1, 2, 3]


def test_mask_overlay_shape_must_match():
    with pytest.raises(ValueError):
        mask_overlay(np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2), np.int8))


def test_mix_is_the_rounded_linear_blend():
    image = np.array([[[0, 100, 255]]], np.uint8)
    heat = np.array([[[255, 0, 255]]], np.uint8)
    assert mix(image, heat, 0.5).tolist() == [[[128, 50, 255]]]  # 127.5 rounds to even 128
    assert mix(image, heat, 0.0).tolist() == image.tolist()
    assert mix(image, heat, 1.7).tolist() == heat.tolist()  # opacity clipped to 1


def test_paint_outline_marks_the_inner_rim_of_each_region():
    mask = np.zeros((6, 7), np.int8)
    mask[1:5, 1:6] = RED
    mask[2:4, 3] = GREEN  # a green hole inside the red
    rim = paint_outline(mask, 1)
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 1, 1, 0],
            [0, 1, 0, 1, 0, 1, 0],
            [0, 1, 0, 1, 0, 1, 0],
            [0, 1, 1, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        bool,
    )
    # Red next to the green column, and the green column itself, are rim too.
    expected[2:4, 2] = expected[2:4, 4] = True
    assert np.array_equal(rim, expected)
    assert not paint_outline(mask, 0).any()


def test_paint_outline_width_and_border():
    mask = np.zeros((3, 9), np.int8)
    mask[:, 2:] = GREEN  # touches the top, bottom and right border: no rim there
    assert paint_outline(mask, 2)[1].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert paint_outline(mask, 2)[0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0]
    # at_border: the image's edge counts as unmarked, so the rim runs along it too
    bordered = paint_outline(mask, 2, at_border=True)
    assert bordered[1].tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1]  # 3 rows: every row is within 2 of the edge
    assert bordered[:, 8].all() and not bordered[:, :2].any()


def test_mask_overlay_draws_the_outline_solid():
    composite = np.full((1, 3, 3), 100, np.uint8)
    mask = np.array([[RED, RED, GREEN]], np.int8)
    outline = np.array([[True, False, True]])
    out = mask_overlay(composite, mask, 0.5, outline=outline)
    assert out[0, 0].tolist() == list(RED_RGB)
    assert out[0, 1].tolist() == [178, 50, 50]
    assert out[0, 2].tolist() == list(GREEN_RGB)
