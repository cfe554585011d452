"""Tests for loss/counterexamples.py: annotated images' red pixels come from another row."""

import torch

from loss import swap_red_regions

N, C, H, W = 5, 3, 6, 6


def rows_filled_with_their_index():
    """N x C x H x W where every pixel of row i is i: a swapped pixel names its donor."""
    return torch.arange(N, dtype=torch.float32).view(N, 1, 1, 1).expand(N, C, H, W).clone()


def test_red_pixels_of_annotated_rows_come_from_one_other_row():
    images = rows_filled_with_their_index()
    masks = torch.zeros(N, H, W)
    masks[:, :2, :2] = 1.0  # red corner
    masks[:, 4:, 4:] = -1.0  # green is never swapped
    has_mask = torch.tensor([True, True, False, True, False])
    swapped = swap_red_regions(images, masks, has_mask, torch.Generator().manual_seed(0))
    assert swapped is not images
    for row in range(N):
        red = masks[row] == 1
        if has_mask[row]:
            donors = swapped[row][:, red].unique()
            assert donors.numel() == 1 and donors.item() != row  # one donor, never itself
        torch.testing.assert_close(swapped[row][:, ~red], images[row][:, ~red])
        if not has_mask[row]:
            torch.testing.assert_close(swapped[row], images[row])


def test_donors_are_spread_over_the_other_rows():
    images = rows_filled_with_their_index()
    masks = torch.ones(N, H, W)
    has_mask = torch.ones(N, dtype=torch.bool)
    generator = torch.Generator().manual_seed(1)
    seen = set()
    for _ in range(50):
        swapped = swap_red_regions(images, masks, has_mask, generator)
        seen.add(int(swapped[0, 0, 0, 0]))
    assert seen == {1, 2, 3, 4}


def test_nothing_to_swap_returns_the_images_unchanged():
    images = rows_filled_with_their_index()
    has_mask = torch.ones(N, dtype=torch.bool)
    no_red = torch.full((N, H, W), -1.0)
    assert swap_red_regions(images, no_red, has_mask) is images
    red = torch.ones(N, H, W)
    assert swap_red_regions(images, red, torch.zeros(N, dtype=torch.bool)) is images
    alone = images[:1]  # no other row to take pixels from
    assert swap_red_regions(alone, red[:1], has_mask[:1]) is alone


def test_same_generator_seed_same_swap():
    images = torch.randn(N, C, H, W)
    masks = (torch.rand(N, H, W) > 0.5).float()
    has_mask = torch.ones(N, dtype=torch.bool)
    first = swap_red_regions(images, masks, has_mask, torch.Generator().manual_seed(7))
    second = swap_red_regions(images, masks, has_mask, torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, second)
