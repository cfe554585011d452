"""One item of an image folder data set (`Sample`) and a batch of them on a device (`SampleBatch`)."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch.utils.data import Dataset


class Sample(NamedTuple):
    """One item of an ImageFolderData (or, after default collate, a batch of N of them)."""

    image: torch.Tensor  # 3 x H x W float32, normalised with the model's mean/std (N x 3 x H x W)
    target: int  # class index (N int64)
    mask: torch.Tensor  # H x W float32 in {-1, 0, +1}, zeros when there is no mask (N x H x W)
    has_mask: bool  # whether the image has a mask on disk (N bool)
    index: int  # position of the image in its data set (N int64)


class SampleBatch(NamedTuple):
    """N samples of a data set stacked on a device (`stack_samples`)."""

    images: torch.Tensor  # N x 3 x H x W float32, normalised
    targets: torch.Tensor  # N int64 class indices
    masks: torch.Tensor  # N x H x W float32 in {-1, 0, +1}
    has_mask: torch.Tensor  # N bool


def stack_samples(dataset: Dataset, indices: Sequence[int], device: torch.device) -> SampleBatch:
    """`dataset[i]` for each of `indices` (Sample-like items), stacked into one batch on `device`."""
    samples = [dataset[i] for i in indices]
    return SampleBatch(
        images=torch.stack([s[0] for s in samples]).to(device),
        targets=torch.tensor([int(s[1]) for s in samples], dtype=torch.long, device=device),
        masks=torch.stack([torch.as_tensor(s[2]) for s in samples]).to(device),
        has_mask=torch.tensor([bool(s[3]) for s in samples], dtype=torch.bool, device=device),
    )
