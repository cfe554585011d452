"""The brush window's picture (`ui.brush.render`): image, heatmap and paint in numpy, no display.

A 16 x 16 image on a 320 x 320 canvas is drawn at 20 screen pixels per image pixel, so every
image pixel is a 20 x 20 block of the composite.
"""

from __future__ import annotations

import numpy as np

from datasets.masks import GREEN, RED
from ui.brush.render import OUTLINE_PX, BrushRender
from ui.brush.strokes import Box, paint_disc
from ui.helpers.geometry import View
from ui.helpers.overlay import heatmap_rgba

SIDE = 16
CANVAS = (320, 320)


def _image(seed=0, side=SIDE):
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def _saliency(seed=0):
    return np.random.default_rng(seed).random((8, 8)).astype(np.float32)


def _render(render, mask, image=None, view=View(), heat=0.0, paint=0.5, key=0):
    image = _image() if image is None else image
    return render.render(key, image, _saliency(), mask, CANVAS, view, heat_opacity=heat, paint_opacity=paint)


def test_no_heatmap_no_paint_is_the_image_in_crisp_squares():
    render = BrushRender()
    image = _image()
    composite = _render(render, np.zeros((SIDE, SIDE), np.int8), image)
    assert composite.shape == (320, 320, 3) and composite.dtype == np.uint8
    assert render.fit.scale == 20 and render.origin == (0, 0)
    assert np.array_equal(composite, image.repeat(20, axis=0).repeat(20, axis=1))


def test_full_heatmap_opacity_shows_only_the_heatmap():
    render = BrushRender()
    composite = _render(render, np.zeros((SIDE, SIDE), np.int8), heat=1.0)
    heat = heatmap_rgba(_saliency(), (SIDE, SIDE))[..., :3]
    assert np.array_equal(composite, heat.repeat(20, axis=0).repeat(20, axis=1))
    assert np.array_equal(render.heat, composite)


def test_paint_tints_its_pixels_and_leaves_the_others():
    render = BrushRender()
    image = _image()
    mask = np.zeros((SIDE, SIDE), np.int8)
    mask[4:8, 4:8] = RED
    mask[10:14, 10:14] = GREEN
    composite = _render(render, mask, image, paint=1.0).astype(int)
    red, green = composite[6 * 20 + 10, 6 * 20 + 10], composite[12 * 20 + 10, 12 * 20 + 10]
    assert red[0] > red[1] and red[0] > red[2]
    assert green[1] > green[0] and green[1] > green[2]
    assert np.array_equal(composite[:60, :60], image[:3, :3].repeat(20, axis=0).repeat(20, axis=1))


def test_a_refreshed_box_matches_a_full_render():
    render = BrushRender()
    mask = np.zeros((SIDE, SIDE), np.int8)
    _render(render, mask, heat=0.25)
    box = paint_disc(mask, 6.5, 9.5, 2, RED)
    left, top, patch = render.refresh(mask, box, 0.5)
    expected = _render(BrushRender(), mask, heat=0.25)
    assert np.array_equal(render.composite, expected)
    # The patch is the box on screen and its outline's reach, no more.
    assert (left, top) == (box.left * 20 - OUTLINE_PX, box.top * 20 - OUTLINE_PX)
    assert patch.shape == ((box.bottom - box.top) * 20 + 2 * OUTLINE_PX, (box.right - box.left) * 20 + 2 * OUTLINE_PX, 3)
    assert np.array_equal(patch, expected[top : top + patch.shape[0], left : left + patch.shape[1]])


def test_a_box_off_screen_refreshes_nothing():
    render = BrushRender()
    mask = np.zeros((SIDE, SIDE), np.int8)
    assert render.refresh(mask, Box(0, 0, 2, 2), 0.5) is None  # nothing rendered yet
    view = View(zoom=4.0, center_x=12.0, center_y=12.0)  # zoomed on the lower right corner
    _render(render, mask, view=view)
    before = render.composite.copy()
    mask[0:2, 0:2] = RED
    assert render.refresh(mask, Box(0, 0, 2, 2), 0.5) is None
    assert np.array_equal(render.composite, before)


def test_the_scaled_image_is_cached_until_the_image_view_or_canvas_changes():
    render = BrushRender()
    mask = np.zeros((SIDE, SIDE), np.int8)
    _render(render, mask, heat=0.25)
    shown, heat = render.shown, render.heat
    _render(render, mask, heat=0.75, paint=0.2)  # the sliders only re-mix
    assert render.shown is shown and render.heat is heat
    _render(render, mask, heat=0.75, view=View(zoom=2.0))
    assert render.shown is not shown
    assert render.fit.scale == 40 and render.zoom((SIDE, SIDE, 3), CANVAS) == 2.0
    other = _image(seed=1)
    _render(render, mask, other, heat=0.0, view=View(zoom=2.0), key=1)  # another image
    assert np.array_equal(render.composite[:40, :40], np.broadcast_to(other[render.rows[0], render.cols[0]], (40, 40, 3)))


def test_a_shrunk_image_is_resampled_not_sampled():
    render = BrushRender()
    side = 640  # twice the canvas
    image = np.zeros((side, side, 3), np.uint8)
    image[:, 1::2] = 255  # one-pixel stripes: nearest neighbour would show only one colour
    composite = render.render(0, image, _saliency(), np.zeros((side, side), np.int8), CANVAS, View(), 0.0, 0.5)
    assert composite.shape == (320, 320, 3) and render.fit.scale == 0.5
    assert 100 < composite[160, 160, 0] < 155  # averaged to grey


def test_a_shrunk_image_renders_at_every_canvas_size():
    """The visible box in image pixels could pass the image's edge by a rounding error, and PIL
    refused it: the brush window did not open on a 900 x 600 image at 1280 x 720."""
    import numpy as np

    from ui.brush.render import BrushRender
    from ui.helpers.geometry import View

    image = np.zeros((600, 900, 3), np.uint8)
    saliency, mask = np.zeros((32, 32), np.float32), np.zeros((600, 900), np.int8)
    for width in range(200, 420):
        for height in (width, width - 37):
            composite = BrushRender().render(0, image, saliency, mask, (width, height), View(), 0.5, 0.5)
            assert composite.shape[1] <= width and composite.shape[0] <= height
