"""Small wording helpers shared by the windows (no tkinter): counts with the right plural,
durations as a clock shows them."""

from __future__ import annotations

from typing import Optional


def plural(count: int, noun: str, plural_form: str = "") -> str:
    """`plural(1, "image")` -> "1 image", `plural(3, "image")` -> "3 images"."""
    word = noun if count == 1 else (plural_form or noun + "s")
    return f"{count} {word}"


def format_duration(seconds: Optional[float]) -> str:
    """`75.4` -> "1:15", `3725` -> "1:02:05", None -> "--:--"."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"
