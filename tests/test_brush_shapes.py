"""The brush window's shapes as objects (`ui.brush.shapes`), without a display.

Each shape gets press / drag / release at image points from a host that stands in for the
window: a real `PaintRound` on a 16 x 16 image, an identity fit and a canvas that only records
what is drawn on it. The mouse-driven GUI tests (test_brush_window.py) drive the same objects
through real X events.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import pytest

from app.run.messages import FeedbackItem
from datasets.masks import GREEN, RED, MaskStore
from ui.brush.shapes import SHAPE_CLASSES, BrushShape, FillShape, LassoShape, RectangleShape, make_shapes
from ui.brush.state import PaintRound
from ui.brush.strokes import Box
from ui.brush.tools import SHAPES
from ui.helpers.geometry import Fit

SIDE = 16


class _Canvas:
    """Records item states and coordinates, like the few `tk.Canvas` calls the shapes make."""

    def __init__(self) -> None:
        self.items: dict = {}

    def _create(self, **options) -> int:
        item = len(self.items) + 1
        self.items[item] = {"state": options.get("state", "normal"), "coords": ()}
        return item

    def create_rectangle(self, *_coords, **options) -> int:
        return self._create(**options)

    def create_line(self, *_coords, **options) -> int:
        return self._create(**options)

    def coords(self, item, *coords) -> None:
        self.items[item]["coords"] = coords

    def itemconfigure(self, item, **options) -> None:
        self.items[item].update(options)

    def tag_raise(self, _item) -> None:
        pass


class _Host:
    """The brush window as the shapes see it."""

    def __init__(self, tmp_path, value: int = RED, radius: int = 2) -> None:
        image = np.zeros((SIDE, SIDE, 3), dtype=np.uint8)
        item = FeedbackItem("a.png", image, np.zeros((8, 8), np.float32), "3", "8", 0.5)
        self.paint_round = PaintRound([item], MaskStore(tmp_path / "masks"))
        self.paint_round.go_to(0)
        self.canvas = _Canvas()
        self.fit = Fit(scale=1.0, offset_x=0, offset_y=0, image_w=SIDE, image_h=SIDE)
        self.radius = radius
        self.paint_value = value
        self.refreshed: List[Optional[Box]] = []
        self.edits: List[Optional[Box]] = []

    def schedule_refresh(self, box) -> None:
        self.refreshed.append(box)

    def apply_edit(self, box) -> None:
        self.edits.append(box)


@pytest.fixture
def host(tmp_path):
    host = _Host(tmp_path)
    yield host
    host.paint_round.close()


def test_one_object_per_shape_in_the_order_of_the_buttons(host) -> None:
    assert tuple(cls.name for cls in SHAPE_CLASSES) == SHAPES
    shapes = make_shapes(host)
    assert list(shapes) == list(SHAPES)
    assert [shape.shows_brush_cursor for shape in shapes.values()] == [True, False, False, False]


def test_brush_paints_along_the_drag_and_release_adds_the_last_point(host) -> None:
    brush = BrushShape(host)
    brush.press(2, 2)
    brush.drag(8, 2)
    brush.release(12, 2)
    assert host.paint_round.drawing  # the window ends the stroke after the release
    assert host.paint_round.end_stroke()
    mask = host.paint_round.mask
    assert mask[2, 2] == RED and mask[2, 8] == RED and mask[2, 12] == RED
    assert mask[10, 10] == 0
    assert len(host.refreshed) == 3 and all(box is not None for box in host.refreshed)


def test_brush_release_without_a_stroke_does_nothing(host) -> None:
    BrushShape(host).release(3, 3)
    assert not host.paint_round.mask.any() and host.refreshed == []


def test_rectangle_shows_a_band_and_paints_on_release(host) -> None:
    rectangle = RectangleShape(host)
    (band,) = host.canvas.items
    assert host.canvas.items[band]["state"] == "hidden"
    rectangle.press(2, 3)
    rectangle.drag(6, 7)
    assert host.canvas.items[band]["state"] == "normal"
    assert host.canvas.items[band]["coords"] == (2, 3, 6, 7)
    rectangle.release(8, 9)
    assert host.canvas.items[band]["state"] == "hidden" and rectangle.start is None
    mask = host.paint_round.mask
    assert mask[3:9, 2:8].all() and mask.sum() == mask[3:10, 2:9].sum()
    assert len(host.edits) == 1


def test_a_cancelled_rectangle_paints_nothing(host) -> None:
    rectangle = RectangleShape(host)
    rectangle.press(2, 3)
    rectangle.cancel()
    rectangle.drag(8, 8)
    rectangle.release(8, 8)
    assert not host.paint_round.mask.any() and host.edits == []


def test_lasso_fills_the_traced_outline(tmp_path) -> None:
    host = _Host(tmp_path, value=GREEN)
    try:
        lasso = LassoShape(host)
        lasso.press(2, 2)
        for point in ((12, 2), (12, 12)):
            lasso.drag(*point)
        assert len(lasso.points) == 3
        lasso.release(2, 12)
        mask = host.paint_round.mask
        assert mask[7, 7] == GREEN and mask[0, 15] == 0
        assert lasso.points == [] and len(host.edits) == 1
    finally:
        host.paint_round.close()


def test_fill_paints_the_connected_area_at_the_press(host) -> None:
    FillShape(host).press(5, 5)
    assert (host.paint_round.mask == RED).all()
    assert len(host.edits) == 1
