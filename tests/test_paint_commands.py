"""Tests for app/run/paint_commands.py's pure part: the "not this" mask saved for a correction.
(The answers to the brush window's commands are driven end to end in test_propagation_ui.py and
test_trainer.py.)"""

import numpy as np
import pytest

from app.errors import UserError
from app.run import messages as msg
from app.run.paint_commands import (
    GALLERY_COMMANDS,
    PAINT_COMMANDS,
    PROPAGATION_COMMANDS,
    PaintCommands,
    not_this_mask,
    propagation_failed,
)


def test_not_this_mask_is_the_region_at_the_display_size():
    region = np.array([[True, False], [False, False]])
    mask = not_this_mask(region, (4, 6), None)
    assert mask.dtype == np.int8 and mask.shape == (4, 6)
    expected = np.zeros((4, 6), np.int8)
    expected[:2, :3] = 1  # nearest neighbour: the top-left quarter
    assert np.array_equal(mask, expected)


def test_not_this_mask_keeps_an_earlier_correction_of_the_same_size():
    earlier = np.zeros((2, 2), np.int8)
    earlier[1, 1] = 1
    earlier[1, 0] = -1  # only its positive (red) part counts
    mask = not_this_mask([[1, 0], [0, 0]], (2, 2), earlier)
    assert np.array_equal(mask, np.array([[1, 0], [0, 1]], np.int8))


def test_not_this_mask_ignores_an_earlier_correction_of_another_size():
    mask = not_this_mask(np.zeros((2, 2), bool), (2, 2), np.ones((3, 3), np.int8))
    assert not mask.any()


def test_the_paint_commands_are_the_propagation_correction_and_gallery_ones():
    assert set(PAINT_COMMANDS) == set(PROPAGATION_COMMANDS) | {msg.MarkNotThis, msg.PreviewPage} | set(GALLERY_COMMANDS)
    assert msg.StartFinetune not in PAINT_COMMANDS and msg.SkipFeedback not in PAINT_COMMANDS
    assert set(PAINT_COMMANDS) <= set(msg.COMMAND_TYPES)


def test_a_command_not_answered_while_painting_is_refused():
    with pytest.raises(TypeError):
        PaintCommands(None).answer(msg.Commit())


def test_a_refused_propagation_answers_the_users_mistake_without_a_traceback():
    try:
        raise UserError("paint something red first")
    except UserError as error:
        failed = propagation_failed(("a.png",), "content", error)
    assert failed.message == "paint something red first" and failed.user_error
    assert (failed.sources, failed.scope) == (("a.png",), "content")


def test_a_propagation_bug_answers_with_its_traceback():
    try:
        raise KeyError("b.png")
    except KeyError as error:
        failed = propagation_failed(("a.png",), "all", error)
    assert failed.message == "KeyError: 'b.png'" and not failed.user_error
    assert "Traceback" in failed.details and "KeyError" in failed.details
