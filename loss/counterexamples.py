"""Counterexamples from red paint: make what the user painted red uninformative.

A gradient penalty makes the model locally insensitive to the red pixels of the images it is
shown, and a network can meet that and still read the region. Counterexamples (CAIPI, Teso &
Kersting, AIES 2019) attack the shortcut in the data instead: each annotated image's red pixels
are replaced before the step, with the label kept, so whatever sits under the red paint no longer
predicts the label.

The region is filled with the image's *own* surroundings, smoothed into it (a normalised
convolution that ignores the red pixels), plus another batch image's fine texture: pasting the
other image's pixels as they are would leave the region's outline, the painted thing's own
silhouette, for the cross-entropy to learn. docs/losses.md ("Counterexamples") has the
measurements and the variants tried.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from loss.image_filters import gaussian_blur

# Smoothing scales of the fill, as a share of the image side: the smallest whose normalised
# weight reaches FILL_MIN_WEIGHT at a pixel fills it (a large region needs a wide surround).
FILL_SIGMAS = (1 / 16, 1 / 4, 1.0)
FILL_MIN_WEIGHT = 0.05


def fill_from_surround(images: Tensor, region: Tensor, donors: Tensor, donor_region: Optional[Tensor] = None) -> Tensor:
    """`images` with `region` replaced by their own smoothed surround plus the donors' texture.

    Args:
        images: N x C x H x W (any normalisation).
        region: N x H x W bool, the pixels to replace.
        donors: N x C x H x W, whose fine texture (minus its smoothing at the first scale) is added.
        donor_region: N x H x W bool or None, the donors' own painted pixels: no texture is taken
            there (it would carry the donor's shortcut, e.g. its edges, into the fill).
    Returns:
        N x C x H x W, equal to `images` outside `region`.
    """
    side = max(images.shape[-2:])
    keep = (~region).unsqueeze(1).to(images.dtype)
    fill = torch.zeros_like(images)
    filled = torch.zeros_like(keep, dtype=torch.bool)
    for share in FILL_SIGMAS:
        sigma = max(1.0, share * side)
        weight = gaussian_blur(keep, sigma)
        mean = gaussian_blur(images * keep, sigma) / weight.clamp_min(1e-6)
        usable = (weight >= FILL_MIN_WEIGHT) & ~filled
        fill = torch.where(usable, mean, fill)
        filled = filled | usable
    # Nowhere to take a surround from (the whole image is red): the image's mean.
    fill = torch.where(filled, fill, images.mean(dim=(2, 3), keepdim=True).expand_as(images))
    texture = donors - gaussian_blur(donors, max(1.0, FILL_SIGMAS[0] * side))
    if donor_region is not None:
        texture = texture.masked_fill(gaussian_blur(donor_region.unsqueeze(1).to(texture.dtype), 1.0) > 0.01, 0.0)
    return torch.where(region.unsqueeze(1), fill + texture, images)


def swap_red_regions(images: Tensor, masks: Tensor, has_mask: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Replace the red pixels of each annotated row: its own smoothed surround plus the fine
    texture of the same pixels of another random row (`fill_from_surround`).

    Args:
        images: N x C x H x W.
        masks: N x H x W in {-1, 0, +1}; only +1 (red) is swapped.
        has_mask: N bool, which rows are annotated (other rows are only donors).
        generator: a CPU generator for the choice of donors; None uses torch's global one.

    Returns:
        A new N x C x H x W tensor (``images`` itself when nothing is red or N < 2).
        Row ``i``'s donor is uniform over the other rows.
    """
    n = images.shape[0]
    red = (masks == 1) & has_mask.to(dtype=torch.bool, device=masks.device).view(-1, 1, 1)
    if n < 2 or not bool(red.any()):
        return images
    offsets = torch.randint(1, n, (n,), generator=generator)
    donors = ((torch.arange(n) + offsets) % n).to(images.device)
    red = red.to(images.device)
    # Only the rows with red paint change, so only those are filled (docs/step_cost.md, section 3).
    rows = red.flatten(1).any(dim=1).nonzero().squeeze(1)
    swapped = images.clone()
    swapped[rows] = fill_from_surround(images[rows], red[rows], images[donors[rows]], red[donors[rows]])
    return swapped
