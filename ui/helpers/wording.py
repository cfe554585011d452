"""Small wording helpers shared by the windows (no tkinter): counts with the right plural."""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str = "") -> str:
    """`plural(1, "image")` -> "1 image", `plural(3, "image")` -> "3 images"."""
    word = noun if count == 1 else (plural_form or noun + "s")
    return f"{count} {word}"
