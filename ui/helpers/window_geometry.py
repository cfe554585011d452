"""Window sizes that fit the screen, remembered between launches.

`fit_geometry` clamps a wanted size (and position) to the screen, so no window opens larger
than a 1280 x 720 laptop screen; `GeometryStore` keeps each window's last geometry in
`$XDG_CONFIG_HOME/saliency-steering/windows.json` (written atomically). Pure: no tkinter.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

from datasets.atomic_files import write_json_atomic

log = logging.getLogger(__name__)

MARGIN_W = 16  # screen pixels left around a window (borders)
MARGIN_H = 64  # ... and above/below it (title bar, panels)
_GEOMETRY = re.compile(r"^(\d+)x(\d+)(?:([+-]-?\d+)([+-]-?\d+))?$")


def parse_geometry(text: str) -> Optional[Tuple[int, int, Optional[int], Optional[int]]]:
    """ "800x600+10+20" -> (800, 600, 10, 20); "800x600" -> (800, 600, None, None)."""
    match = _GEOMETRY.match(str(text).strip())
    if not match:
        return None
    width, height, x, y = match.groups()
    return (int(width), int(height), int(x.replace("+", "")) if x else None, int(y.replace("+", "")) if y else None)


def fit_geometry(width: int, height: int, screen_w: int, screen_h: int, x: Optional[int] = None, y: Optional[int] = None) -> str:
    """A Tk geometry string for at most `width x height` that lies on the screen."""
    width = max(200, min(int(width), screen_w - MARGIN_W))
    height = max(150, min(int(height), screen_h - MARGIN_H))
    if x is None or y is None:
        return f"{width}x{height}"
    x = min(max(0, int(x)), max(0, screen_w - width - MARGIN_W // 2))
    y = min(max(0, int(y)), max(0, screen_h - height - MARGIN_H // 2))
    return f"{width}x{height}+{x}+{y}"


def default_store_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "saliency-steering" / "windows.json"


class GeometryStore:
    """Last geometry per window name; failures to read or write only log (never in the way)."""

    def __init__(self, path: Optional[os.PathLike | str] = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()

    def _read(self) -> Dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def load(self, name: str, screen_w: int, screen_h: int) -> Optional[str]:
        """The remembered geometry of `name`, clamped to this screen; None when unknown."""
        parsed = parse_geometry(self._read().get(name, ""))
        if parsed is None:
            return None
        width, height, x, y = parsed
        return fit_geometry(width, height, screen_w, screen_h, x, y)

    def save(self, name: str, geometry: str) -> None:
        if parse_geometry(geometry) is None:
            return
        data = self._read()
        data[name] = geometry
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, data)
        except OSError as error:
            log.warning("cannot remember the window size in %s: %s", self.path, error)
