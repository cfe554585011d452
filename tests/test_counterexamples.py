"""Tests for loss/counterexamples.py: the annotated images' red regions are filled from their own
surround plus another row's texture, so neither the painted content nor its outline is left."""

import torch

from loss import swap_red_regions
from loss.counterexamples import fill_from_surround

N, C, H, W = 5, 3, 16, 16


def flat_rows():
    """N x C x H x W where every pixel of row i is 10 * i: a level that names its row."""
    return (10.0 * torch.arange(N, dtype=torch.float32)).view(N, 1, 1, 1).expand(N, C, H, W).clone()


def glyph_masks():
    """A plus-shaped red glyph in the top-left of every row, green elsewhere."""
    masks = torch.zeros(N, H, W)
    masks[:, 1:6, 3] = 1.0
    masks[:, 3, 1:6] = 1.0
    masks[:, 10:, 10:] = -1.0
    return masks


def test_red_is_filled_with_the_rows_own_surround_not_the_donors_level():
    # The surround of row i is the level 10 i, a donor's is another level: pasting the donor's
    # pixels would leave the plus visible; the fill must match the row's own surround. An
    # annotated donor's own red gives no texture (it would carry its plus's edges along).
    images = flat_rows()
    masks = glyph_masks()
    has_mask = torch.tensor([True, True, False, True, False])
    images[has_mask.nonzero()[:, 0][:, None], :, masks[0] == 1] = 255.0  # the shortcut: a bright plus
    filled = swap_red_regions(images, masks, has_mask, torch.Generator().manual_seed(0))
    for row in range(N):
        red = masks[row] == 1
        torch.testing.assert_close(filled[row][:, ~red], images[row][:, ~red])  # only red changes
        if has_mask[row]:
            # flat donors have no texture: the fill is exactly the row's own level
            torch.testing.assert_close(filled[row][:, red], torch.full_like(filled[row][:, red], 10.0 * row))
        else:
            torch.testing.assert_close(filled[row], images[row])


def test_the_fill_carries_the_donors_fine_texture():
    base = torch.zeros(1, 1, H, W)
    checker = ((torch.arange(H).view(-1, 1) + torch.arange(W).view(1, -1)) % 2).float().view(1, 1, H, W) * 40 - 20
    region = torch.zeros(1, H, W, dtype=torch.bool)
    region[0, 4:12, 4:12] = True
    filled = fill_from_surround(base, region, checker)
    inside = filled[0, 0][region[0]]
    assert inside.std() > 10  # texture, not a flat patch
    assert abs(float(inside.mean())) < 3  # around the surround's level (0)


def test_a_region_with_no_surround_nearby_still_gets_a_finite_fill():
    images = torch.rand(2, 3, 32, 32)
    region = torch.zeros(2, 32, 32, dtype=torch.bool)
    region[:, 2:30, 2:30] = True  # large: the first smoothing scale has too little surround
    filled = fill_from_surround(images, region, images.flip(0))
    assert torch.isfinite(filled).all()
    everything = torch.ones(2, 32, 32, dtype=torch.bool)
    assert torch.isfinite(fill_from_surround(images, everything, images.flip(0))).all()


def test_donor_texture_comes_from_another_row():
    # Rows are flat except row k's checkerboard; only a row whose donor is k gets texture.
    images = flat_rows()
    texture = ((torch.arange(H).view(-1, 1) + torch.arange(W).view(1, -1)) % 2).float() * 40 - 20
    masks = torch.zeros(N, H, W)
    for row in range(N):  # the painted thing moves: each row's red sits elsewhere
        masks[row, 2 * row : 2 * row + 6, 8:14] = 1
    has_mask = torch.ones(N, dtype=torch.bool)
    seen = set()
    generator = torch.Generator().manual_seed(1)
    for k in range(N):
        textured = images.clone()
        textured[k] += texture
        for _ in range(20):
            filled = swap_red_regions(textured, masks, has_mask, generator)
            if filled[k][:, masks[k] == 1].std() > 5:
                seen.add("self")  # row k must never be its own donor
            for row in range(N):
                if row != k and filled[row][:, masks[row] == 1].std() > 5:
                    seen.add((row, k))
    assert "self" not in seen
    assert {donor for _, donor in seen} == set(range(N))


def test_nothing_to_swap_returns_the_images_unchanged():
    images = flat_rows()
    has_mask = torch.ones(N, dtype=torch.bool)
    no_red = torch.full((N, H, W), -1.0)
    assert swap_red_regions(images, no_red, has_mask) is images
    red = torch.ones(N, H, W)
    assert swap_red_regions(images, red, torch.zeros(N, dtype=torch.bool)) is images
    alone = images[:1]  # no other row to take texture from
    assert swap_red_regions(alone, red[:1], has_mask[:1]) is alone


def test_same_generator_seed_same_swap():
    images = torch.randn(N, C, H, W)
    masks = (torch.rand(N, H, W) > 0.5).float()
    has_mask = torch.ones(N, dtype=torch.bool)
    first = swap_red_regions(images, masks, has_mask, torch.Generator().manual_seed(7))
    second = swap_red_regions(images, masks, has_mask, torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, second)
