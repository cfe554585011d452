"""Data-parallel runs under torchrun: the process group, who this process is, small collectives.

``torchrun --nproc_per_node N main.py train ...`` starts N copies of the command line; each
finds its rank in the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), joins one process group (NCCL on GPUs, gloo on CPUs) and
trains one share of every batch through ``torch.nn.parallel.DistributedDataParallel``
(``app.engine.guided_step``). Started without torchrun, everything here is a no-op for one process.

What every rank must agree on, and how:
- the data order: every rank seeds the same sampler and takes its own share of it
  (``app.engine.rank_sampler``);
- when to stop (pause, Ctrl+C, a non-finite loss): a flag in the small all-reduce every step
  already makes (``app.engine.guided_step``), so all ranks leave the loop at the same batch and none
  is left waiting in a collective;
- the model they validate: BatchNorm running averages drift apart between ranks (each updates
  them from its own shard), so ``sync_buffers`` averages them over the ranks before every
  evaluation and checkpoint, and stop decisions taken from validation are the same everywhere.

Ctrl+C: the terminal sends SIGINT to every worker and torchrun's agent, which then sends them
SIGTERM; inside ``process_group`` SIGTERM counts as Ctrl+C too, so each rank asks to stop after
the current batch, all stop at the same one, and rank 0 saves the checkpoint before the agent's
grace period (30 s) ends.

Faults: a rank that raises prints its error and exits; torchrun's agent then ends the other
workers (its default is no restarts), and a worker blocked in a collective sees the closed
connection and raises. ``PROCESS_GROUP_TIMEOUT`` bounds a rank that hangs without exiting.
Only rank 0 writes files (checkpoints, metrics, reports) and prints progress.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from app.errors import UserError
from models import pick_device

logger = logging.getLogger(__name__)

# How long a collective may wait for a silent peer before the run fails instead of hanging.
# PyTorch's default; the ranks scan the data folder independently before their first
# collective, and on very large folders the scans can drift apart by minutes (docs/scaling.md).
PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0  # this process's index among all processes, 0 = the one that writes files
    world_size: int = 1  # number of processes training together
    local_rank: int = 0  # index among the processes on this machine (which GPU to use)

    @property
    def enabled(self) -> bool:
        """True when several processes train together (a process group is up)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints, metrics and reports."""
        return self.rank == 0

    def device(self, name: str = "auto") -> torch.device:
        """This process's device: ``models.pick_device(name)``, with CUDA pinned to
        ``cuda:<local_rank>`` in a data-parallel run (one GPU per process)."""
        device = pick_device(name)
        if self.enabled and device.type == "cuda":
            if name not in ("auto", "cuda"):
                raise UserError(
                    f"under torchrun each process uses the GPU of its local rank; pass --device cuda or auto, not {name}"
                )
            if self.local_rank >= torch.cuda.device_count():
                raise UserError(
                    f"local rank {self.local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                    "start at most one process per GPU (--nproc_per_node)"
                )
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device


SINGLE_PROCESS = DistributedContext()


def launched_by_torchrun() -> bool:
    """True when the environment holds torchrun's rendezvous variables for several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


@contextlib.contextmanager
def process_group(device_name: str = "auto") -> Iterator[DistributedContext]:
    """Join torchrun's process group for the block (NCCL when this process gets a GPU, else
    gloo); yields ``SINGLE_PROCESS`` when not started by torchrun. Leaves the group on exit."""
    if not launched_by_torchrun():
        yield SINGLE_PROCESS
        return
    context = DistributedContext(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    device = context.device(device_name)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # torchrun's stop = Ctrl+C
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend,
        timeout=PROCESS_GROUP_TIMEOUT,
        **({"device_id": device} if device.type == "cuda" else {}),
    )
    logger.info("rank %d of %d joined the %s process group on %s", context.rank, context.world_size, backend, device)
    try:
        yield context
    finally:
        # No barrier: after a fault the peers may be gone, and waiting for them would hang.
        dist.destroy_process_group()


def collective_device() -> torch.device:
    """Where small tensors for a collective must live: the GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: Sequence[float], context: DistributedContext) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (float64, no autograd); the values
    themselves for one process. Every rank must call it at the same point."""
    if not context.enabled:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=collective_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def sync_buffers(model: nn.Module, context: DistributedContext) -> None:
    """Make every rank's buffers equal, so all ranks evaluate (and rank 0 saves) the same model:
    floating-point ones (BatchNorm running averages) become their mean over the ranks, others
    (step counters, equal anyway) rank 0's. Parameters need nothing: identical averaged
    gradients keep them equal.

    Averaging uses every rank's rows (rank 0's alone saw 1/W of them) and is exact for the running
    means; docs/distributed.md has what it changed against copying rank 0's."""
    if not context.enabled:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer.data)
            buffer.data.div_(context.world_size)
        else:
            dist.broadcast(buffer.data, src=0)


def shard_rows(rows: int, context: DistributedContext) -> slice:
    """This rank's rows of a batch that every rank built identically: rank, rank + W, ..."""
    return slice(context.rank, rows, context.world_size)
