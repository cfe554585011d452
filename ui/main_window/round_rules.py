"""A feedback round's rules for the main window, without widgets: when a round's window may
open, what the brush window's Done or Cancel sends the trainer and logs, and the log line of a
reasonability matrix.

Pure (no tkinter), tested without a display (tests/test_run_controller.py); the main window's
event handling (`ui.main_window.engine_events`) applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from app.explain.mask_provenance import is_hand_painted
from app.run import messages as msg
from ui.helpers.wording import plural

from .run_controller import Note

__all__ = ["RoundAnswer", "paint_cancelled", "paint_done", "reasonability_note", "round_can_open"]


@dataclass(frozen=True)
class RoundAnswer:
    """What a closed brush window sends the trainer, and what the window says about it."""

    command: Any  # msg.StartFinetune or msg.SkipFeedback
    note: Note
    status: str = ""  # a status-line message, when the log line is not enough


def round_can_open(closing: bool, trainer: Any) -> bool:
    """Open a round's window (brush, chooser) only for a trainer that still waits for it."""
    return not closing and trainer is not None and not trainer.stopping


def paint_done(relpaths: Sequence[str], masks: Any, max_steps: Optional[int] = None) -> RoundAnswer:
    """The brush window's Done on `relpaths` (this round's images with a mask): fine-tune,
    `max_steps` long (None: the configured round); with nothing painted now and no mask in
    `masks` (datasets.MaskStore) from earlier rounds, skip instead (a 0-step round would open a
    chooser comparing nothing). The log counts the images painted by hand apart from those that
    only got a propagated mask (which also have a mask, but were not painted)."""
    if not relpaths and not masks.annotated():
        return RoundAnswer(
            msg.SkipFeedback(),
            Note("Nothing painted, so nothing to fine-tune; training resumes"),
            "Nothing painted: nothing to fine-tune. Training resumes.",
        )
    painted = [r for r in relpaths if is_hand_painted(masks, r)]
    text = f"Painted {plural(len(painted), 'image')}"
    if len(relpaths) > len(painted):
        text += f" ({len(relpaths) - len(painted)} more of this round's images got a propagated mask)"
    text += f"; fine-tuning ({max_steps} steps at most)..." if max_steps else "; fine-tuning..."
    return RoundAnswer(msg.StartFinetune(tuple(relpaths), max_steps=max_steps), Note(text))


def paint_cancelled() -> RoundAnswer:
    return RoundAnswer(msg.SkipFeedback(), Note("Painting cancelled; training continues unchanged"))


def reasonability_note(event: msg.ReasonabilityReady) -> Note:
    matrix = event.matrix
    bad = matrix.counts.get("accurate_unreasonable", 0)
    return Note(
        f"Reasonability before round {event.round}: {bad} of {matrix.n_images} judged "
        f"images are right for the wrong reason (Reasonability... shows them)"
    )
