"""Canvas <-> image coordinates of `ui.helpers.geometry` (no display needed)."""

from __future__ import annotations

import numpy as np
import pytest

from ui.helpers.geometry import (
    Fit,
    display_indices,
    display_span,
    fit_image,
    pixel_at,
    radius_to_canvas,
    radius_to_image,
    to_canvas,
    to_image,
)


def test_fit_upscales_a_tiny_image_by_a_whole_number_and_centres_it():
    fit = fit_image(32, 32, 768, 700)
    # 700 / 32 = 21.875 -> rounded down to 21 (>= 8: crisp pixel grid).
    assert fit == Fit(scale=21.0, offset_x=(768 - 672) // 2, offset_y=(700 - 672) // 2, image_w=32, image_h=32)
    assert (fit.display_w, fit.display_h) == (672, 672)


def test_fit_keeps_aspect_for_wide_and_tall_images():
    wide = fit_image(200, 100, 600, 600)  # limited by the width
    assert wide.scale == 3.0 and (wide.display_w, wide.display_h) == (600, 300)
    assert (wide.offset_x, wide.offset_y) == (0, 150)
    tall = fit_image(100, 400, 600, 600)  # limited by the height
    assert tall.scale == 1.5 and (tall.display_w, tall.display_h) == (150, 600)
    assert (tall.offset_x, tall.offset_y) == (225, 0)


def test_fit_shrinks_a_large_image():
    fit = fit_image(1024, 512, 512, 512)
    assert fit.scale == 0.5 and (fit.display_w, fit.display_h) == (512, 256)
    assert (fit.offset_x, fit.offset_y) == (0, 128)


def test_fractional_scale_below_the_integer_threshold_is_kept():
    fit = fit_image(100, 100, 350, 350)
    assert fit.scale == 3.5 and fit.display_w == 350


def test_fit_rejects_empty_images():
    with pytest.raises(ValueError):
        fit_image(0, 10, 100, 100)


@pytest.mark.parametrize("size", [(32, 32), (200, 100), (100, 400), (1024, 512), (7, 13)])
def test_coordinates_round_trip(size):
    image_w, image_h = size
    fit = fit_image(image_w, image_h, 768, 600)
    rng = np.random.default_rng(1)
    for x, y in rng.uniform(-50, 800, size=(50, 2)):
        assert to_canvas(fit, *to_image(fit, x, y)) == pytest.approx((x, y))
        assert to_image(fit, *to_canvas(fit, x, y)) == pytest.approx((x, y))


def test_corners_map_to_the_display_rectangle():
    fit = fit_image(32, 32, 768, 700)  # scale 21, offsets (48, 14)
    assert to_canvas(fit, 0, 0) == (48, 14)
    assert to_canvas(fit, 32, 32) == (48 + 672, 14 + 672)
    assert to_image(fit, 48 + 21 * 3 + 10, 14 + 21 * 5) == pytest.approx((3 + 10 / 21, 5))


def test_radius_conversions():
    fit = fit_image(32, 32, 640, 640)  # scale 20
    assert radius_to_canvas(fit, 3) == 60
    assert radius_to_image(fit, 60) == 3
    assert radius_to_image(fit, radius_to_canvas(fit, 7.25)) == pytest.approx(7.25)


def test_pixel_at_is_the_pixel_under_the_point_or_none():
    fit = fit_image(4, 2, 40, 40)  # scale 10, offsets (0, 10)
    assert pixel_at(fit, 0, 10) == (0, 0)
    assert pixel_at(fit, 39.9, 29.9) == (3, 1)
    assert pixel_at(fit, 15, 25) == (1, 1)
    assert pixel_at(fit, 40, 20) is None  # right edge is exclusive
    assert pixel_at(fit, 5, 9.9) is None  # above the image
    assert pixel_at(fit, -0.1, 15) is None


def test_display_indices_repeat_each_pixel_scale_times_when_integer():
    fit = fit_image(4, 2, 12, 12)  # scale 3
    rows, cols = display_indices(fit)
    assert rows.tolist() == [0, 0, 0, 1, 1, 1]
    assert cols.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    image = np.arange(8).reshape(2, 4)
    shown = image[rows][:, cols]
    assert shown.shape == (6, 12) and shown[4, 7] == image[1, 2]


def test_display_indices_agree_with_pixel_at_for_fractional_and_shrinking_scales():
    for size, canvas in (((10, 7), (35, 35)), ((100, 60), (40, 40))):
        fit = fit_image(*size, *canvas)
        rows, cols = display_indices(fit)
        for i in range(fit.display_h):
            for j in range(0, fit.display_w, 3):
                x, y = fit.offset_x + j + 0.5, fit.offset_y + i + 0.5
                assert pixel_at(fit, x, y) == (cols[j], rows[i])


def test_display_span_finds_the_display_rows_of_an_image_range():
    fit = fit_image(4, 2, 12, 12)  # scale 3
    rows, cols = display_indices(fit)
    assert display_span(cols, 1, 3) == (3, 9)
    assert display_span(rows, 0, 2) == (0, 6)
    assert display_span(cols, 4, 4) == (12, 12)


# ----------------------------------------------------------------------------- zoom and pan
def test_zoom_keeps_the_point_under_the_pointer_and_pan_stays_on_the_image():
    from ui.helpers.geometry import View, pan_view, to_image, view_fit, visible_indices, zoom_view

    assert view_fit(100, 50, 400, 400, View()) == view_fit(100, 50, 400, 400, View(1.0, 3, 3))
    view = zoom_view(View(), 100, 50, 400, 400, 100, 200, 2.0)
    fit = view_fit(100, 50, 400, 400, view)
    assert fit.scale == 8.0 and to_image(fit, 100, 200) == (25.0, 25.0)  # still under it
    panned = pan_view(view, 100, 50, 400, 400, 50, 0)
    assert view_fit(100, 50, 400, 400, panned).offset_x == fit.offset_x + 50
    far = pan_view(view, 100, 50, 400, 400, 10_000, 0)  # cannot drag the image off the canvas
    assert view_fit(100, 50, 400, 400, far).offset_x == 0
    assert zoom_view(view, 100, 50, 400, 400, 0, 0, 0.1) == View()  # never below the fit
    rows, cols, x0, y0 = visible_indices(fit, 400, 400)
    assert len(cols) == 400 and x0 == 100 and cols[0] == 12 and cols[-1] == 62
    assert len(rows) == 400 and y0 == 0


def test_visible_span():
    from ui.helpers.geometry import visible_span

    assert visible_span(10, 100, 400) == (0, 100)
    assert visible_span(-50, 1000, 400) == (50, 450)
    assert visible_span(-950, 1000, 400) == (950, 1000)
