"""Tests for app/explain/content_locator.py: painted content is found where it sits in *other* images.

The synthetic images are hard in the ways real ones are: a smooth random background under noise,
a random blob (the "object"), and the shortcut, a flat patch of a random colour and side 4-7 at a
random position; only three images are painted. Thresholds are about 0.1 below what was measured
(recorded next to each assertion), so a regression shows and seed noise does not.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from app.errors import UserError
from app.explain.content_locator import ContentLocator, LocatorConfig, feature_count, pixel_features
from app.explain.locator_regions import core as _core

SIDE = 32


def scene(rng: np.random.Generator, distractor: bool = False):
    """(image 3 x 32 x 32 in [0, 1], patch mask bool 32 x 32, distractor mask bool 32 x 32)."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / (SIDE - 1)
    base = rng.uniform(0.1, 0.5) + rng.uniform(-0.2, 0.2) * xx + rng.uniform(-0.2, 0.2) * yy
    image = np.repeat(base[None], 3, 0) + rng.normal(0, 0.08, (3, SIDE, SIDE))
    cy, cx, r = rng.uniform(10, 22), rng.uniform(10, 22), rng.uniform(4, 7)  # the object: a noisy blob
    blob = (yy * (SIDE - 1) - cy) ** 2 + (xx * (SIDE - 1) - cx) ** 2 < r**2
    image[:, blob] += 0.25
    side = int(rng.integers(4, 8))
    while True:  # the shortcut: a flat patch of a random colour somewhere off the object
        row, col = (int(v) for v in rng.integers(0, SIDE - side + 1, 2))
        patch = np.zeros((SIDE, SIDE), bool)
        patch[row : row + side, col : col + side] = True
        if not (patch & blob).any():
            break
    image[:, patch] = rng.uniform(0.2, 1.0, (3, 1))
    line = np.zeros((SIDE, SIDE), bool)
    if distractor:  # a flat bright bar: flat like the patch, but not it
        r0 = int(rng.integers(0, SIDE - 2))
        line[r0 : r0 + 2, 2:30] = ~patch[r0 : r0 + 2, 2:30] & ~blob[r0 : r0 + 2, 2:30]
        image[:, line] = 0.95
    return torch.from_numpy(np.clip(image, 0, 1)).float(), patch, line


def scenes(n, seed, distractor=False):
    rng = np.random.default_rng(seed)
    made = [scene(rng, distractor) for _ in range(n)]
    return torch.stack([m[0] for m in made]), [m[1] for m in made], [m[2] for m in made]


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def test_features_have_the_documented_shape():
    images = torch.rand(2, 3, 20, 24)
    assert pixel_features(images).shape == (2, feature_count(), 20, 24)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_patch_is_found_where_it_sits_in_other_images(seed):
    images, patches, _ = scenes(43, seed)
    locator = ContentLocator(LocatorConfig()).fit(images[:3], patches[:3])
    found = locator.locate(images[3:])
    hits = [bool((f.mask & p).any()) for f, p in zip(found, patches[3:])]
    covered = [float((f.mask & p).sum() / p.sum()) for f, p in zip(found, patches[3:])]
    # measured (seeds 0, 1): hits 0.85 / 0.85, covered 0.76 / 0.75, IoU with the patch 0.22 / 0.21
    # (the found region carries the brush margin around the patch, and three painted patches of
    # random colours say little about a fourth colour: this scene is harder than the demos)
    assert np.mean(hits) >= 0.7
    assert np.mean(covered) >= 0.6
    assert np.mean([iou(f.mask, p) for f, p in zip(found, patches[3:])]) >= 0.15
    assert all(0.0 <= f.confidence <= 1.0 for f in found)


def test_a_not_this_correction_removes_a_false_find():
    # Painted images without the bar; other images with a flat bright bar, found as well at first.
    painted, painted_patches, _ = scenes(3, 3)
    images, patches, bars = scenes(31, 13, distractor=True)
    # The correction alone: without the weak-find rule, which drops the bar beside a stronger
    # patch in some images by itself (0.43 -> 0.30 of the images before any correction).
    config = LocatorConfig(weak_find_mass=0)
    plain = ContentLocator(config).fit(painted, painted_patches)
    false_before = np.mean([bool((f.mask & b).any()) for f, b in zip(plain.locate(images[1:]), bars[1:])])
    corrected = ContentLocator(config).fit(painted, painted_patches, negatives=[(images[0], bars[0])])
    found = corrected.locate(images[1:])
    false_after = np.mean([bool((f.mask & b).any()) for f, b in zip(found, bars[1:])])
    hits_after = np.mean([bool((f.mask & p).any()) for f, p in zip(found, patches[1:])])
    # measured: the bar touched by a find in 0.50 of the other images before, 0.33 after one
    # correction (its look vetoes regions like it); the patch still found in 0.80 (0.93 before).
    # (Before the painted red's rim was left out of the content (`LocatorConfig.rim`): 0.83 and
    # 0.60, the patch 0.73 after.)
    assert false_before >= 0.4
    assert false_after <= false_before - 0.15
    assert hits_after >= 0.7


def test_weak_side_finds_are_dropped_but_a_small_sure_one_is_kept():
    probability = np.zeros((20, 20))
    probability[2:8, 2:8] = 0.9  # the thing: 36 px, sure (mass 32.4)
    probability[12:18, 12:15] = 0.4  # a faint find on the object: 18 px, mass 7.2, less sure
    probability[15:17, 2:4] = 0.95  # a small find surer than the thing: mass 3.8, kept
    locator = ContentLocator(LocatorConfig())
    labels, confidences = locator._regions(probability, 0.3)
    assert len(confidences) == 3
    kept, kept_confidences = locator._strongest(labels, confidences, probability)
    assert kept[2:8, 2:8].all() and kept[15:17, 2:4].all() and not kept[12:18, 12:15].any()
    assert sorted(kept_confidences) == pytest.approx([0.9, 0.95])
    every = ContentLocator(LocatorConfig(weak_find_mass=0))._strongest(labels, confidences, probability)[0]
    assert (every > 0).sum() == 36 + 18 + 4  # 0 keeps every region


def test_the_red_rim_is_not_learnt_and_thin_strokes_are_kept_whole():
    square = np.zeros((12, 12), bool)
    square[2:8, 2:8] = True  # a 4 x 4 thing painted with a 1 px margin
    line = np.zeros((12, 12), bool)
    line[10, 1:11] = True  # a 1 px stroke: no core, kept as painted
    core = _core(square | line, 1)
    assert core[3:7, 3:7].all() and core[2:8, 2:8].sum() == 16
    assert (core & line).sum() == line.sum()
    assert (_core(square, 0) == square).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_brush_margin_is_not_learnt_as_the_content(seed):
    # Painted as a person paints: the patch with a 1 px margin of background around it. Learnt
    # as content, that margin (noisy background beside an edge) makes the locator fire beside
    # any edge of other images; the rim is left out, so finds stay on the patch.
    images, patches, _ = scenes(43, seed)
    painted = [ndimage.binary_dilation(p, structure=np.ones((3, 3), bool)) for p in patches[:3]]

    def measured(rim):
        found = ContentLocator(LocatorConfig(rim=rim)).fit(images[:3], painted).locate(images[3:])
        covered = np.mean([(f.mask & p).sum() / p.sum() for f, p in zip(found, patches[3:])])
        # pixels found beyond the patch's own brush margin (the locator's margin is 2 px at 32)
        beyond = np.mean([(f.mask & ~ndimage.binary_dilation(p, iterations=2)).sum() for f, p in zip(found, patches[3:])])
        return covered, beyond

    covered_rim, beyond_rim = measured(1.0)
    covered_all, beyond_all = measured(0.0)
    # measured (seeds 0, 1), finds grown by 1 px either way: beyond 15 / 17 px with the rim left
    # out against 47 / 85 px with it learnt; covered 0.71 / 0.72 against 0.77 / 0.69. (When every
    # find was grown by a 2 px brush margin: 33 / 34 against 75 / 121 px, covered 0.76 / 0.77
    # against 0.81 / 0.72.)
    assert beyond_rim <= 0.6 * beyond_all
    assert covered_rim >= 0.65
    assert covered_rim >= covered_all - 0.1


def test_nothing_red_is_a_user_error():
    images, patches, _ = scenes(2, 0)
    with pytest.raises(UserError, match="nothing is painted red"):
        ContentLocator().fit(images, [np.zeros_like(p) for p in patches])


def test_a_not_this_correction_is_learnt_without_recoloured_copies():
    # jitter_copies=0 (no recoloured copies) once crashed fit as soon as a "not this" correction
    # was given: the correction's copies were made with zero copies (an empty torch.stack).
    images, patches, bars = scenes(4, 5, distractor=True)
    config = LocatorConfig(jitter_copies=0, steps=20)
    locator = ContentLocator(config).fit(images[:2], patches[:2], negatives=[(images[2], bars[2])])
    assert locator._wrong_looks is not None and locator._wrong_looks.shape == (1, feature_count(config))
    found = locator.locate(images[3:])
    assert len(found) == 1 and found[0].mask.shape == (SIDE, SIDE)


def test_negative_recoloured_copies_are_refused_at_construction():
    with pytest.raises(ValueError, match="jitter_copies"):
        LocatorConfig(jitter_copies=-1)
