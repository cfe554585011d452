"""The paired test that tells a real accuracy change from sampling noise."""

import numpy as np
import pytest

from app.engine.accuracy_change import AccuracyChange


def test_counts_are_taken_per_image():
    before = np.array([True, True, False, False, True])
    after = np.array([True, False, True, True, True])
    change = AccuracyChange.between(before, after)
    assert (change.gained, change.lost, change.n) == (2, 1, 5)
    assert change.change == pytest.approx(0.2)
    assert change.text() == "+2 / -1 images"


def test_a_few_points_on_a_few_hundred_images_can_be_noise_or_not():
    # 3 points down on 359 images: from 40 gained / 51 lost it is chance, from 0 / 11 it is not.
    noisy, clear = AccuracyChange(40, 51, 359), AccuracyChange(0, 11, 359)
    assert noisy.change == pytest.approx(clear.change)
    assert not noisy.beyond_noise() and not noisy.fell(0.02)
    assert clear.beyond_noise() and clear.fell(0.02) and not clear.rose(0.0)
    # A significant but smaller fall than asked for is not a fall of that size.
    assert not AccuracyChange(0, 5, 359).fell(0.02)
    assert AccuracyChange(30, 0, 359).rose(0.02)
    assert not AccuracyChange(0, 0, 359).beyond_noise() and AccuracyChange(0, 0, 0).change == 0.0


def test_mismatched_outcomes_are_refused():
    with pytest.raises(ValueError, match="one length"):
        AccuracyChange.between(np.ones(3, bool), np.ones(4, bool))
