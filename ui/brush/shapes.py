"""The brush window's shapes as objects: what a press, a drag and a release of the left button do.

A shape says how paint goes down (the tool, `ui.brush.tools`, says what: red, green or erased):
- `BrushShape`: a round brush of the window's radius, painted along the drag;
- `RectangleShape`: a rectangle dragged out (a dashed rubber band) and filled on release;
- `LassoShape`: an outline traced with the drag (a dashed line) and filled on release;
- `FillShape`: the connected area of the same paint under the press, filled at once.

The window keeps one object per shape and hands the mouse to the one selected, as napari gives
each mode of a layer its own mouse bindings, so no handler holds an if/elif over the shapes. A
gesture (press ... release) belongs to the shape that began it: the release goes there even if
the shape changed meanwhile (a change cancels a rectangle or lasso; a brush stroke is finished by
its release). Points are image coordinates (`ui.helpers.geometry.to_image`); the rubber band and
the lasso's trace are one canvas item each, moved, never created per event.
"""

from __future__ import annotations

import tkinter as tk
from typing import Dict, List, Optional, Protocol, Tuple

import numpy as np

from ui.helpers.geometry import Fit, to_canvas

from .state import PaintRound
from .strokes import Box, flood_region, polygon_region, rectangle_region

__all__ = ["SHAPE_CLASSES", "BrushShape", "FillShape", "LassoShape", "RectangleShape", "ShapeHost", "ShapeTool", "make_shapes"]

Point = Tuple[float, float]


class ShapeHost(Protocol):
    """What a shape needs from the brush window."""

    canvas: tk.Canvas
    paint_round: PaintRound

    @property
    def fit(self) -> Optional[Fit]: ...  # where the image lies on the canvas

    @property
    def radius(self) -> int: ...  # brush radius in image pixels

    @property
    def paint_value(self) -> int: ...  # the mask value the tool puts down (RED, GREEN, ERASE)

    def schedule_refresh(self, box: Optional[Box]) -> None: ...  # redraw this region soon

    def apply_edit(self, box: Optional[Box]) -> None: ...  # after an edit that saved itself


class ShapeTool:
    """One shape: `press`, `drag` and `release` at image points; `cancel` drops a gesture under way."""

    name = ""
    cursor = "tcross"  # the canvas cursor while this shape is selected
    shows_brush_cursor = False  # the circle of the brush's radius follows the pointer

    def __init__(self, host: ShapeHost) -> None:
        self.host = host

    def press(self, x: float, y: float) -> None:
        pass

    def drag(self, x: float, y: float) -> None:
        pass

    def release(self, x: float, y: float) -> None:
        pass

    def cancel(self) -> None:
        pass

    def _apply_region(self, region: np.ndarray) -> None:
        """A rectangle, lasso or fill: one undoable edit, saved like a stroke."""
        host = self.host
        host.apply_edit(host.paint_round.apply_region(region, host.paint_value))


class BrushShape(ShapeTool):
    """A stroke of round dabs; each motion paints into the mask and schedules one refresh."""

    name = "brush"
    cursor = "crosshair"
    shows_brush_cursor = True

    def press(self, x: float, y: float) -> None:
        host = self.host
        host.schedule_refresh(host.paint_round.begin_stroke(x, y, host.radius, host.paint_value))

    def drag(self, x: float, y: float) -> None:
        self.host.schedule_refresh(self.host.paint_round.extend_stroke(x, y))

    def release(self, x: float, y: float) -> None:
        # the window ends the stroke (and hands it to the writer) after the release
        if self.host.paint_round.drawing:
            self.drag(x, y)


class RectangleShape(ShapeTool):
    """Drag out a rectangle (the rubber band shows it); released, its pixels are painted."""

    name = "rectangle"

    def __init__(self, host: ShapeHost) -> None:
        super().__init__(host)
        self.start: Optional[Point] = None  # image point of the press
        self._band = host.canvas.create_rectangle(0, 0, 0, 0, outline="white", dash=(4, 2), width=2, state="hidden")

    def press(self, x: float, y: float) -> None:
        self.start = (x, y)
        self._show_band(x, y)

    def drag(self, x: float, y: float) -> None:
        if self.start is not None:
            self._show_band(x, y)

    def release(self, x: float, y: float) -> None:
        if self.start is None:
            return
        start = self.start
        self.cancel()
        self._apply_region(rectangle_region(self.host.paint_round.mask.shape, *start, x, y))

    def cancel(self) -> None:
        self.start = None
        self.host.canvas.itemconfigure(self._band, state="hidden")

    def _show_band(self, x: float, y: float) -> None:
        canvas, fit = self.host.canvas, self.host.fit
        x0, y0 = to_canvas(fit, *self.start)
        x1, y1 = to_canvas(fit, x, y)
        canvas.coords(self._band, x0, y0, x1, y1)
        canvas.itemconfigure(self._band, state="normal")
        canvas.tag_raise(self._band)


class LassoShape(ShapeTool):
    """Trace an outline with the drag (shown as a dashed line); released, the closed outline is
    filled."""

    name = "lasso"

    def __init__(self, host: ShapeHost) -> None:
        super().__init__(host)
        self.points: List[Point] = []  # image points so far
        self._trace = host.canvas.create_line(0, 0, 0, 0, fill="white", dash=(4, 2), width=2, state="hidden")

    def press(self, x: float, y: float) -> None:
        self.points = [(x, y)]
        self._show_trace()

    def drag(self, x: float, y: float) -> None:
        if self.points:
            self.points.append((x, y))
            self._show_trace()

    def release(self, x: float, y: float) -> None:
        if not self.points:
            return
        points = self.points + [(x, y)]
        self.cancel()
        self._apply_region(polygon_region(self.host.paint_round.mask.shape, points))

    def cancel(self) -> None:
        self.points = []
        self.host.canvas.itemconfigure(self._trace, state="hidden")

    def _show_trace(self) -> None:
        canvas, fit = self.host.canvas, self.host.fit
        coords = [c for point in self.points for c in to_canvas(fit, *point)]
        if len(coords) < 4:
            coords = coords + coords
        canvas.coords(self._trace, *coords)
        canvas.itemconfigure(self._trace, state="normal")
        canvas.tag_raise(self._trace)


class FillShape(ShapeTool):
    """Fill the connected area of the same paint under the press."""

    name = "fill"

    def press(self, x: float, y: float) -> None:
        self._apply_region(flood_region(self.host.paint_round.mask, x, y))


SHAPE_CLASSES = (BrushShape, RectangleShape, LassoShape, FillShape)  # in `ui.brush.tools.SHAPES` order


def make_shapes(host: ShapeHost) -> Dict[str, ShapeTool]:
    """One object per shape, by name (`ui.brush.tools.SHAPES`)."""
    return {cls.name: cls(host) for cls in SHAPE_CLASSES}
