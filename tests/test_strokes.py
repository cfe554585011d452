"""Stroke rasterisation and undo/redo of `ui.brush.strokes` (no display needed)."""

from __future__ import annotations

import numpy as np
import pytest

from ui.brush.strokes import ERASE, GREEN, RED, Box, StrokeHistory, paint_disc, paint_segment, union


def _grid(rows):
    """Test helper: a mask from strings, '#' = RED, 'g' = GREEN, '.' = 0."""
    table = {"#": RED, "g": GREEN, ".": 0}
    return np.array([[table[c] for c in row] for row in rows], dtype=np.int8)


def test_constants_follow_the_mask_convention():
    assert (RED, GREEN, ERASE) == (1, -1, 0)


def test_disc_on_a_pixel_centre_with_radius_1_is_a_plus():
    mask = np.zeros((5, 5), np.int8)
    box = paint_disc(mask, 2.5, 2.5, 1.0, RED)
    assert np.array_equal(mask, _grid([".....", "..#..", ".###.", "..#..", "....."]))
    assert box == Box(1, 1, 4, 4)


def test_disc_radius_1_5_is_a_3x3_block_and_radius_2_adds_the_tips():
    mask = np.zeros((5, 5), np.int8)
    paint_disc(mask, 2.5, 2.5, 1.5, GREEN)  # corners at distance sqrt(2) <= 1.5
    assert np.array_equal(mask, _grid([".....", ".ggg.", ".ggg.", ".ggg.", "....."]))
    paint_disc(mask, 2.5, 2.5, 2.0, GREEN)
    assert np.array_equal(mask, _grid(["..g..", ".ggg.", "ggggg", ".ggg.", "..g.."]))


def test_tiny_disc_still_paints_the_pixel_under_the_point():
    mask = np.zeros((4, 4), np.int8)
    paint_disc(mask, 2.0, 1.0, 0.2, RED)  # a pixel corner: no centre within 0.2
    assert np.argwhere(mask).tolist() == [[1, 2]]


def test_disc_between_pixel_centres():
    mask = np.zeros((4, 4), np.int8)
    paint_disc(mask, 2.0, 2.0, 1.0, RED)  # the four centres around (2, 2) are at 0.707
    assert np.array_equal(mask, _grid(["....", ".##.", ".##.", "...."]))


def test_disc_is_clipped_at_the_border_and_off_mask_is_none():
    mask = np.zeros((3, 3), np.int8)
    box = paint_disc(mask, 0.5, 0.5, 1.0, RED)
    assert np.array_equal(mask, _grid(["##.", "#..", "..."]))
    assert box == Box(0, 0, 2, 2)
    before = mask.copy()
    assert paint_disc(mask, -5.0, 1.0, 2.0, RED) is None
    assert paint_disc(mask, 1.0, 9.0, 2.0, RED) is None
    assert np.array_equal(mask, before)


def test_disc_whose_edge_reaches_in_from_outside_paints_the_rim():
    mask = np.zeros((3, 3), np.int8)
    paint_disc(mask, -0.5, 1.5, 1.0, GREEN)  # centre off the mask, (0.5, 1.5) at distance 1
    assert np.argwhere(mask).tolist() == [[1, 0]]


def test_segment_is_a_capsule():
    mask = np.zeros((5, 8), np.int8)
    box = paint_segment(mask, 1.5, 2.5, 6.5, 2.5, 1.0, RED)
    assert np.array_equal(mask, _grid(["........", ".######.", "########", ".######.", "........"]))
    assert box == Box(0, 1, 8, 4)


def test_diagonal_segment_exact_pixels():
    mask = np.zeros((5, 5), np.int8)
    paint_segment(mask, 0.5, 0.5, 4.5, 4.5, 0.75, RED)  # off-diagonal centres are at 0.707
    assert np.array_equal(mask, _grid(["##...", "###..", ".###.", "..###", "...##"]))


def test_eraser_paints_zero_and_green_overwrites_red():
    mask = np.full((3, 3), RED, np.int8)
    paint_disc(mask, 1.5, 1.5, 0.5, ERASE)
    paint_disc(mask, 0.5, 0.5, 0.5, GREEN)
    assert np.array_equal(mask, _grid(["g##", "#.#", "###"]))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        paint_disc(np.zeros((3, 3), np.int8), 1, 1, 1, 2)
    with pytest.raises(ValueError):
        paint_disc(np.zeros((3, 3), np.int8), 1, 1, -1, RED)
    with pytest.raises(ValueError):
        paint_disc(np.zeros((3, 3, 1), np.int8), 1, 1, 1, RED)


def _crossed_pixels(points, height, width, samples=2000):
    """Pixels that the polyline through `points` passes through (dense sampling)."""
    crossed = set()
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        for t in np.linspace(0, 1, samples):
            col, row = int(np.floor(x0 + t * (x1 - x0))), int(np.floor(y0 + t * (y1 - y0)))
            if 0 <= col < width and 0 <= row < height:
                crossed.add((row, col))
    return crossed


@pytest.mark.parametrize("radius", [0.75, 1.0, 3.0])
def test_fast_strokes_have_no_gaps(radius):
    # A few motion events far apart, as when the mouse moves fast: every pixel on the path is
    # painted, and the painted pixels form one 4-connected region.
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for _ in range(20):
        points = [tuple(p) for p in rng.uniform(-3, 67, size=(4, 2))]
        history = StrokeHistory(np.zeros((64, 64), np.int8))
        history.begin(*points[0], radius, RED)
        for point in points[1:]:
            history.extend(*point)
        history.end()
        painted = history.mask == RED
        for row, col in _crossed_pixels(points, 64, 64):
            assert painted[row, col], (points, row, col)
        _, components = ndimage.label(painted)
        assert components == 1


def test_box_union():
    assert union(None, None) is None
    assert union(Box(1, 2, 3, 4), None) == Box(1, 2, 3, 4)
    assert union(Box(1, 2, 3, 4), Box(0, 3, 2, 9)) == Box(0, 2, 3, 9)
    assert np.zeros((10, 10))[Box(1, 2, 4, 3).slices].shape == (1, 3)


def test_history_undoes_and_redoes_whole_strokes():
    mask = np.zeros((6, 6), np.int8)
    history = StrokeHistory(mask)
    history.begin(0.5, 0.5, 0.5, RED)
    history.extend(5.5, 0.5)  # a motion event
    history.extend(5.5, 5.5)  # another
    edit = history.end()
    first = mask.copy()
    assert first[0].tolist() == [1] * 6 and first[:, 5].tolist() == [1] * 6 and first.sum() == 11
    assert edit.box == Box(0, 0, 6, 6)
    history.begin(2.5, 2.5, 1.0, GREEN)
    history.end()
    second = mask.copy()
    assert (second == GREEN).sum() == 5 and history.undo_depth == 2

    assert history.undo() is not None
    assert np.array_equal(mask, first)  # the whole second stroke goes at once
    assert history.undo() == Box(0, 0, 6, 6)
    assert not mask.any() and not history.can_undo and history.undo() is None
    history.redo()
    assert np.array_equal(mask, first)
    history.redo()
    assert np.array_equal(mask, second)
    assert not history.can_redo and history.redo() is None


def test_edits_keep_only_the_touched_box():
    history = StrokeHistory(np.zeros((100, 100), np.int8))
    history.begin(10.5, 10.5, 2.0, RED)
    edit = history.end()
    assert edit.box == Box(8, 8, 13, 13)
    assert edit.before.shape == edit.after.shape == (5, 5)
    assert not edit.before.any() and edit.after.sum() == 13


def test_a_stroke_that_changes_nothing_is_not_recorded():
    mask = np.full((4, 4), RED, np.int8)
    history = StrokeHistory(mask)
    history.begin(1.5, 1.5, 1.0, RED)
    assert history.end() is None and not history.can_undo
    history.begin(-10, -10, 1.0, RED)  # off the mask
    history.extend(-20, -5)
    assert history.end() is None and not history.can_undo


def test_new_stroke_drops_the_redo_list():
    history = StrokeHistory(np.zeros((4, 4), np.int8))
    history.begin(0.5, 0.5, 0.5, RED)
    history.end()
    history.undo()
    assert history.can_redo
    history.begin(3.5, 3.5, 0.5, GREEN)
    history.end()
    assert not history.can_redo
    assert np.argwhere(history.mask).tolist() == [[3, 3]]


def test_clear_is_undoable_and_noop_on_empty():
    mask = np.zeros((3, 4), np.int8)
    history = StrokeHistory(mask)
    assert history.clear() is None and not history.can_undo
    history.begin(1.5, 1.5, 1.0, GREEN)
    history.end()
    painted = mask.copy()
    assert history.clear() == Box(0, 0, 4, 3)
    assert not mask.any()
    history.undo()
    assert np.array_equal(mask, painted)
    history.redo()
    assert not mask.any()


def test_starting_mask_is_kept_and_undo_restores_it():
    start = _grid(["g..", "...", "..#"])
    mask = start.copy()
    history = StrokeHistory(mask)
    history.begin(1.5, 1.5, 1.5, ERASE)
    history.end()
    assert not mask.any()
    history.undo()
    assert np.array_equal(mask, start)


def test_extend_without_begin_does_nothing_and_limit_bounds_memory():
    history = StrokeHistory(np.zeros((3, 3), np.int8), limit=2)
    assert history.extend(1, 1) is None and not history.mask.any()
    for col in range(3):
        history.begin(col + 0.5, 0.5, 0.1, RED)
        history.end()
    assert history.undo_depth == 2
    history.undo()
    history.undo()
    assert history.mask[0].tolist() == [1, 0, 0]


def test_history_needs_an_int8_mask():
    with pytest.raises(ValueError):
        StrokeHistory(np.zeros((3, 3), np.float32))


# ----------------------------------------------------------------------------- regions
def test_rectangle_lasso_and_fill_regions_are_one_undoable_edit_each():
    import numpy as np

    from ui.brush.strokes import GREEN, RED, StrokeHistory, flood_region, polygon_region, rectangle_region

    mask = np.zeros((8, 10), np.int8)
    history = StrokeHistory(mask)
    box = history.apply_region(rectangle_region(mask.shape, 1.2, 1.2, 4.9, 3.6), RED)
    assert box == (1, 1, 5, 4)  # pixel centres 1.5..4.5 x 1.5..3.5
    assert mask[1:4, 1:5].all() and mask.sum() == 12
    assert rectangle_region(mask.shape, 6.3, 6.3, 6.3, 6.3).sum() == 1  # a click: one pixel
    # an outline of red, then a fill inside it
    ring = np.zeros_like(mask)
    ring[0, :] = ring[-1, :] = RED
    ring[:, 0] = ring[:, -1] = RED
    history.apply_region(ring == RED, RED)
    inside = flood_region(mask, 7.5, 5.5)
    assert inside.sum() == 6 * 8 - 12 + 0 and not inside[0].any()
    history.apply_region(inside, GREEN)
    assert (mask[1:7, 1:9] != 0).all()
    assert history.undo_depth == 3
    history.undo()
    assert not (mask == GREEN).any()
    lasso = polygon_region(mask.shape, [(2, 2), (8, 2), (8, 6), (2, 6)])
    assert lasso[3, 3] and lasso[5, 7] and not lasso[0, 0] and not lasso[7, 9]
    assert history.apply_region(np.zeros_like(lasso), RED) is None
    assert flood_region(mask, -1, -1).sum() == 0
