"""The brush window's tool, shape and radius rules and its status line (`ui.brush.tools`)."""

from __future__ import annotations

from datasets.masks import GREEN, RED
from ui.brush.tools import (
    MAX_RADIUS,
    MIN_RADIUS,
    SHAPE_KEYS,
    SHAPES,
    TOOLS,
    clamp_radius,
    default_radius,
    status_text,
    stepped_radius,
    tool_text,
)


def test_tools_paint_the_mask_values():
    assert TOOLS == {"red": RED, "green": GREEN, "eraser": 0}
    assert set(SHAPE_KEYS) == set(SHAPES)


def test_tool_text_names_tool_and_shape():
    assert tool_text("red", "brush") == "Red brush (discourage)"
    assert tool_text("green", "rectangle") == "Green rectangle (encourage)"
    assert tool_text("red", "fill") == "Red fill (discourage)"
    assert tool_text("eraser", "brush") == "Eraser"
    assert tool_text("eraser", "lasso") == "Eraser (lasso)"


def test_radius_steps_by_one_then_by_a_fifth_and_stays_in_range():
    assert stepped_radius(5, +1) == 6 and stepped_radius(6, -1) == 5
    assert stepped_radius(9, +1) == 10 and stepped_radius(10, +1) == 12
    assert stepped_radius(20, +1) == 24 and stepped_radius(20, -1) == 16
    assert stepped_radius(MIN_RADIUS, -1) == MIN_RADIUS
    assert stepped_radius(MAX_RADIUS, +1) == MAX_RADIUS
    assert clamp_radius(500) == MAX_RADIUS == 80 and clamp_radius(0) == MIN_RADIUS == 1 and clamp_radius(7.9) == 7


def test_default_radius_is_a_sixteenth_of_the_short_side_up_to_12():
    assert default_radius((16, 16, 3)) == 1
    assert default_radius((8, 8)) == 1  # never below one pixel
    assert default_radius((96, 400, 3)) == 6
    assert default_radius((768, 1024, 3)) == 12


def test_status_text():
    assert (
        status_text("red", "brush", 3, 1, 20, 0, " · saved")
        == "Red brush (discourage) · radius 3 px · 1 stroke to undo · red 20 px, green 0 px · saved"
    )
    assert status_text("green", "lasso", 3, 2, 0, 7, "") == "Green lasso (encourage) · 2 strokes to undo · red 0 px, green 7 px"
