"""A torchrun worker for tests/test_distributed.py (not a test module itself).

    torchrun --standalone --nproc_per_node 2 tests/ddp_worker.py OUT_DIR FAULT_RANK

First trains the scenarios of `scenarios()` for a few guided steps on this rank's rows of each
global batch; rank 0 saves the parameters to OUT_DIR/<scenario>.pt. Then one rank alone asks to
stop mid-epoch (each writes OUT_DIR/stop_rank<r>.json, train_one_epoch's result). Then, in the same process
group (one launch keeps the test short), a second run raises on FAULT_RANK in its second batch
while the other rank carries on into its collectives; a rank that gets past the fault writes
OUT_DIR/finished_rank<r>.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

from app.engine.distributed import process_group, shard_rows, sync_buffers  # noqa: E402
from app.engine.guided_step import TrainingStep  # noqa: E402
from app.engine.loops import train_one_epoch  # noqa: E402
from loss import RRRLoss  # noqa: E402
from models import build_model  # noqa: E402

LAM = 100.0
LR = 0.05
SIDE = 16
BATCH = 8  # global batch; 4 rows per rank


def tiny_conv() -> nn.Module:
    """Conv, softplus, pool, linear: no BatchNorm, so a shard's forward does not depend on the
    other shard (the exact-equivalence model)."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.Softplus(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 3),
    )


def small_cnn() -> nn.Module:
    return build_model("small_cnn", 3)


def scenarios() -> dict:
    return {"no_batchnorm": tiny_conv, "batchnorm": small_cnn}


def global_batches(steps: int = 4):
    """Seeded batches (images, targets, masks, has_mask, index): red squares in a corner, and
    annotated rows spread unevenly over the two shards (rows 0, 2, 4 go to rank 0, row 3 to
    rank 1; in the last batch only rank 1 has annotated rows)."""
    generator = torch.Generator().manual_seed(1)
    batches = []
    for step in range(steps):
        images = torch.randn(BATCH, 3, SIDE, SIDE, generator=generator)
        targets = torch.randint(0, 3, (BATCH,), generator=generator)
        masks = torch.zeros(BATCH, SIDE, SIDE)
        masks[:, :5, :5] = 1.0
        masks[:, -4:, -4:] = -1.0
        has_mask = torch.zeros(BATCH, dtype=torch.bool)
        has_mask[[1, 3] if step == steps - 1 else [0, 2, 3, 4]] = True
        batches.append((images, targets, masks, has_mask, torch.arange(BATCH)))
    return batches


def train(model: nn.Module, batches, step: TrainingStep | None = None) -> nn.Module:
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    train_one_epoch(model, batches, optimizer, device=torch.device("cpu"), guidance=RRRLoss(), lam=LAM, step=step)
    return model


def equivalence(out_dir: Path, context) -> None:
    for name, make_model in scenarios().items():
        torch.manual_seed(0)
        model = make_model()
        shards = [tuple(t[shard_rows(BATCH, context)] for t in batch) for batch in global_batches()]
        step = TrainingStep(model, RRRLoss(), LAM, device=torch.device("cpu"), context=context)
        train(model, shards, step)
        if context.is_main:
            torch.save(model.state_dict(), out_dir / f"{name}.pt")
        torch.save({k: v.clone() for k, v in model.named_buffers()}, out_dir / f"{name}_buffers_rank{context.rank}.pt")
        sync_buffers(model, context)
        torch.save({k: v.clone() for k, v in model.named_buffers()}, out_dir / f"{name}_synced_rank{context.rank}.pt")


def stop_vote(out_dir: Path, context) -> None:
    """Rank 1 alone asks to stop before its third batch (Ctrl+C reaching one process first)."""
    torch.manual_seed(0)
    model = tiny_conv()
    shards = [tuple(t[shard_rows(BATCH, context)] for t in batch) for batch in global_batches(steps=5)]
    step = TrainingStep(model, RRRLoss(), LAM, device=torch.device("cpu"), context=context)
    polls = []

    def should_stop() -> bool:
        polls.append(1)
        return context.rank == 1 and len(polls) >= 3

    result = train_one_epoch(
        model,
        shards,
        torch.optim.SGD(model.parameters(), lr=LR),
        device=torch.device("cpu"),
        guidance=RRRLoss(),
        lam=LAM,
        step=step,
        should_stop=should_stop,
    )
    (out_dir / f"stop_rank{context.rank}.json").write_text(json.dumps(result))


class FaultyLoader:
    """Yields this rank's shards; raises in the second batch on `fault_rank`."""

    def __init__(self, batches, rank: int, fault_rank: int) -> None:
        self.batches, self.rank, self.fault_rank = batches, rank, fault_rank

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for number, batch in enumerate(self.batches, start=1):
            if number == 2 and self.rank == self.fault_rank:
                raise RuntimeError(f"injected fault on rank {self.rank}")
            yield batch


def fault(out_dir: Path, context, fault_rank: int) -> None:
    torch.manual_seed(0)
    model = tiny_conv()
    shards = [tuple(t[shard_rows(BATCH, context)] for t in batch) for batch in global_batches(steps=6)]
    step = TrainingStep(model, RRRLoss(), LAM, device=torch.device("cpu"), context=context)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    loader = FaultyLoader(shards, context.rank, fault_rank)
    train_one_epoch(model, loader, optimizer, device=torch.device("cpu"), guidance=RRRLoss(), lam=LAM, step=step)
    (out_dir / f"finished_rank{context.rank}").write_text("the run went on past the fault\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    out, fault_rank = Path(sys.argv[1]), int(sys.argv[2])
    with process_group("cpu") as context:
        equivalence(out, context)
        stop_vote(out, context)
        fault(out, context, fault_rank)
