"""Let the guidance forward see the same network the cross-entropy trains.

In train mode a BatchNorm layer normalises with the statistics of the current batch; in eval
mode with its running averages. If the guidance penalty were computed on the eval-mode network
while the cross-entropy trains the batch-statistics network, the optimiser could satisfy both by
making the two diverge -- and it does: measured on the demo data (small CNN, RRR on 5 % of the
images), train accuracy 0.95 with validation accuracy 0.13 on data from the same distribution.

So the guided step records each train-mode BatchNorm's batch mean and (biased) variance during
the cross-entropy forward, and the guidance forward (a second forward of only the annotated rows)
normalises with exactly those, held constant -- the per-sample function of the train-mode
network, without letting a tiny annotated sub-batch set the statistics or touch the running
averages.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

Statistics = Dict[_BatchNorm, Tuple[Tensor, Tensor]]


@contextlib.contextmanager
def capture_batch_statistics(model: nn.Module) -> Iterator[Statistics]:
    """Within the block, record (mean, biased var) per channel of every train-mode BatchNorm's
    input, detached. Yields the dict being filled."""
    statistics: Statistics = {}

    def record(module: _BatchNorm, inputs: tuple) -> None:
        if not module.training:
            return
        images = inputs[0].detach()
        dims = [d for d in range(images.dim()) if d != 1]
        var, mean = torch.var_mean(images, dim=dims, unbiased=False)
        statistics[module] = (mean, var)

    handles = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, _BatchNorm)]
    try:
        yield statistics
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def normalise_with(statistics: Statistics) -> Iterator[None]:
    """Within the block, the given BatchNorms (to be run in eval mode) use `statistics` in place
    of their running averages; the running buffers are put back untouched on exit."""
    saved = []
    try:
        for module, (mean, var) in statistics.items():
            saved.append((module, module.running_mean, module.running_var))
            module.running_mean = mean
            module.running_var = var
        yield
    finally:
        for module, running_mean, running_var in saved:
            module.running_mean = running_mean
            module.running_var = running_var
