"""The data loaders of a training run: training (masked images oversampled, this rank's share
under torchrun), validation and the optional test folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch.utils.data import DataLoader

from app.engine.config import TrainConfig
from app.engine.distributed import DistributedContext
from app.engine.oversampling import AnnotatedOversampler
from app.engine.rank_sampler import RankShareSampler

EVALUATION_BATCH = 128  # at least this many images per validation or test batch


@dataclass
class RunLoaders:
    train: DataLoader  # seeded; every rank draws the same oversampled order, each its own rows
    val: DataLoader
    test: Optional[DataLoader]  # None without a test folder


def build_loaders(
    splits: Any, test: Any, config: TrainConfig, device: torch.device, distributed: DistributedContext
) -> RunLoaders:
    """The run's loaders: `splits.train` with annotated images drawn `config.oversample_annotated`
    times as often (`app.engine.oversampling`), `config.batch_size` the global batch; `splits.val`
    and `test` (an ImageFolderData or None) in order."""
    pin_memory = device.type == "cuda"
    # Every rank seeds the same generator: the same oversampled order, each its own share.
    generator = torch.Generator().manual_seed(config.seed)
    sampler: Any = AnnotatedOversampler(splits.train, config.oversample_annotated, generator)
    world = distributed.world_size
    batch_size = config.batch_size // world  # this process's rows of the global batch
    if distributed.enabled:
        sampler = RankShareSampler(sampler, distributed.rank, world)
    n_drawn = len(sampler)
    train = DataLoader(
        splits.train,
        batch_size=batch_size,
        sampler=sampler,
        generator=generator,  # as with shuffle=True: the loader's base seed comes from it too
        num_workers=config.num_workers,
        drop_last=n_drawn % batch_size == 1 and n_drawn > 1,
        pin_memory=pin_memory,
        persistent_workers=config.num_workers > 0,
    )
    val = DataLoader(
        splits.val,
        batch_size=max(config.batch_size, EVALUATION_BATCH),
        shuffle=False,
        num_workers=config.num_workers,
        pin_memory=pin_memory,
        persistent_workers=config.num_workers > 0,
    )
    test_loader = None
    if test is not None:
        test_loader = DataLoader(
            test, batch_size=max(config.batch_size, EVALUATION_BATCH), shuffle=False, num_workers=config.num_workers
        )
    return RunLoaders(train, val, test_loader)
