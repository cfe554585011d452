"""Each process's share of one shared sampling order (data-parallel training under torchrun).

Every rank builds the same sampler (``app.engine.oversampling.AnnotatedOversampler``) with an
identically seeded generator, so each epoch all ranks compute the same order, masked images
oversampled in it, exactly as one process would draw it. Rank ``r`` of ``W`` then takes draws
``r, r + W, r + 2W, ...`` of its first ``W x floor(n / W)`` draws: the shares are disjoint and
together are the one-process order, so no draw is made twice across ranks (with a uniform
shuffle, no image is seen twice in an epoch), unlike ``DistributedSampler``'s padding, which
repeats images to even the shares out. The last ``n mod W`` draws of the order are left out.

With a global batch of ``B = W x b`` rows and per-rank batches of ``b``, rank ``r``'s k-th batch
is the rows of the one-process k-th batch at positions ``r (mod W)``: the ranks together train
on exactly the batches one process would.
"""

from __future__ import annotations

from typing import Iterator

from torch.utils.data import Sampler


class RankShareSampler(Sampler[int]):
    """Rank ``rank``'s share (draws ``rank::world_size``) of ``base``'s order, every epoch.

    ``base`` must produce the same order on every rank (same generator seed, same calls).
    """

    def __init__(self, base: Sampler[int], rank: int, world_size: int) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.base = base
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return len(self.base) // self.world_size  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        order = list(self.base)
        kept = len(order) - len(order) % self.world_size
        return iter(order[self.rank : kept : self.world_size])
