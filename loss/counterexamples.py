"""Counterexamples from red paint: make what the user painted red uninformative.

A gradient penalty makes the model locally insensitive to the red pixels of the images it is
shown; a network can meet that and still read the region (measured on the demo: RRR with every
image masked keeps about 10 % of the swatch's saliency and reaches 90 % of the oracle's
accuracy). Counterexamples (CAIPI, Teso & Kersting, AIES 2019; the "CE" method of the
shortcut-mitigation typology benchmark, Nature MI 2023) attack the shortcut in the data instead:
each annotated image's red pixels are replaced by the same pixels of another image of the batch
before the step, with the label kept. Whatever sits under the red paint then no longer predicts
the label, so there is nothing left to learn from it, and the penalty is evaluated at these new
points too, not only at the painted image.

What fills the region matters. Pasting another image's pixels as they are leaves the *outline*
of the red region visible wherever the two images' surroundings differ (another brightness,
another texture), and that outline is the painted thing's own silhouette: when the shortcut is a
shape whose form gives the class away (a tag, a letter, a glyph), the pasted silhouette still
gives it away, and the cross-entropy learns it from the counterexamples themselves. So the region
is filled with the image's *own* surroundings, smoothed into it (a normalised convolution that
ignores the red pixels), plus the donor's fine texture (the donor minus its own smoothing): level
and colour match the surround, texture matches real images, and no outline is left. A shortcut
that stands still (the same corner in every image) still gets the donor's content there, since the
donor's texture is what fills it.
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
    # Only the rows with red paint change: filling just those (3 of 64 rows at 5 % annotated) cost
    # 43 ms per batch on the demo when the whole batch was filled, a third of a guided step.
    rows = red.flatten(1).any(dim=1).nonzero().squeeze(1)
    swapped = images.clone()
    swapped[rows] = fill_from_surround(images[rows], red[rows], images[donors[rows]], red[donors[rows]])
    return swapped
