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

Pixels come from real images of the batch, not noise, so the inputs stay in the data
distribution (a swatch of another class, another patch of background).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def swap_red_regions(
    images: Tensor, masks: Tensor, has_mask: Tensor, generator: Optional[torch.Generator] = None
) -> Tensor:
    """Replace the red pixels of each annotated row by the same pixels of another random row.

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
    return torch.where(red.to(images.device).unsqueeze(1), images[donors], images)
