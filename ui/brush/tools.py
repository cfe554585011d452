"""The brush window's tools, shapes and radius, and the status line's wording: pure rules.

A tool says what is put down (red = discourage, green = encourage, the eraser = unmarked: the
mask values of `ui.brush.strokes`); a shape says how (a round brush, a rectangle dragged out, a lasso
whose outline is filled when released, or a fill of the connected area of the same paint). The
radius is in pixels of the image, not of the screen. No tkinter here: tested without a display.
"""

from __future__ import annotations

from typing import Tuple

from .strokes import ERASE, GREEN, RED

MIN_RADIUS, MAX_RADIUS = 1, 80  # brush radius in pixels of the image
DEFAULT_MAX_RADIUS = 12  # the starting radius is a 16th of the image's short side, at most this
TOOLS = {"red": RED, "green": GREEN, "eraser": ERASE}  # tool -> mask value it paints
TOOL_NAMES = {"red": "Red brush (discourage)", "green": "Green brush (encourage)", "eraser": "Eraser"}
SHAPES = ("brush", "rectangle", "lasso", "fill")
SHAPE_NAMES = {"brush": "brush", "rectangle": "rectangle", "lasso": "lasso", "fill": "fill"}
SHAPE_KEYS = {"brush": "B", "rectangle": "M", "lasso": "L", "fill": "F"}

__all__ = [
    "MIN_RADIUS",
    "MAX_RADIUS",
    "TOOLS",
    "TOOL_NAMES",
    "SHAPES",
    "SHAPE_NAMES",
    "SHAPE_KEYS",
    "tool_text",
    "clamp_radius",
    "default_radius",
    "stepped_radius",
    "status_text",
]


def tool_text(tool: str, shape: str) -> str:
    """ "Red brush (discourage)", "Green rectangle (encourage)", "Eraser (lasso)"."""
    if shape == "brush":
        return TOOL_NAMES[tool]
    return TOOL_NAMES[tool].replace("brush", SHAPE_NAMES[shape]) if tool != "eraser" else f"Eraser ({SHAPE_NAMES[shape]})"


def clamp_radius(radius: float) -> int:
    """A radius in [MIN_RADIUS, MAX_RADIUS] image pixels (rounded down to whole pixels)."""
    return int(min(MAX_RADIUS, max(MIN_RADIUS, radius)))


def default_radius(image_shape: Tuple[int, ...]) -> int:
    """The radius the window opens with for an image of `image_shape` (H x W [x C]): a 16th of
    its short side, between MIN_RADIUS and DEFAULT_MAX_RADIUS."""
    return int(min(DEFAULT_MAX_RADIUS, max(MIN_RADIUS, round(min(image_shape[:2]) / 16))))


def stepped_radius(radius: int, direction: int) -> int:
    """`]` (direction +1) / `[` (-1): one pixel at a time below 10, then in steps of a fifth
    of the radius; clamped."""
    step = max(1, radius // 5) if radius >= 10 else 1
    return clamp_radius(radius + direction * step)


def status_text(tool: str, shape: str, radius: int, undo_depth: int, red: int, green: int, saving: str) -> str:
    """The status line: tool and shape, the radius (for the brush), the edits undo can take
    back, the painted pixels (red, green) and `saving` (e.g. " · saved")."""
    return (
        f"{tool_text(tool, shape)}"
        f"{f' · radius {radius} px' if shape == 'brush' else ''} · "
        f"{undo_depth} stroke{'s' if undo_depth != 1 else ''} to undo · red {red} px, "
        f"green {green} px{saving}"
    )
