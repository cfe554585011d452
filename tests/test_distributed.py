"""Data-parallel guided training (app.engine.distributed, app.engine.guided_step, app.engine.rank_sampler).

The two-process tests start tests/ddp_worker.py under torchrun with the gloo backend on the CPU,
once for the module (one launch, about 15-20 s on a busy 2-core machine): it trains a few guided
steps on each rank's half of every global batch, then runs a second loop in which one rank
raises.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
from pathlib import Path

import ddp_worker  # tests/ is on sys.path under pytest (a test folder without __init__.py)
import pytest
import torch

from app.engine.distributed import SINGLE_PROCESS, DistributedContext, all_reduce_sum, launched_by_torchrun, shard_rows
from app.engine.guided_step import TrainingStep
from app.engine.loops import train_one_epoch
from app.engine.rank_sampler import RankShareSampler
from loss import RRRLoss, guided_loss

ROOT = Path(__file__).resolve().parents[1]
FAULT_RANK = 0  # rank 0 failing is the harder case: rank 1 is left waiting in a collective
LAUNCH_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """(completed torchrun process, seconds it took, its output folder)."""
    out = tmp_path_factory.mktemp("ddp")
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        str(ROOT / "tests" / "ddp_worker.py"),
        str(out),
        str(FAULT_RANK),
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    started = time.monotonic()
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    return completed, time.monotonic() - started, out


def test_two_gloo_processes_train_like_one_process_on_the_global_batch(two_process_run):
    """2 ranks x 4 rows give the parameters of 1 process x 8 rows after 4 guided (RRR, lambda 100)
    SGD steps, annotated rows spread unevenly over the ranks (3 vs 1; 0 vs 2 in the last step).

    The exact comparison uses a model without BatchNorm: with BatchNorm each rank normalises with
    its own shard's statistics (the DDP default, kept here), so one process on the global batch
    computes a different function (measured: 2.6e-3 apart after 4 steps, on 1.2e-2 of movement).
    For that model the reference is one process that computes each shard's guided loss with the
    same weights and averages the gradients, which DDP must match bit for bit.

    Tolerance 1e-6 (absolute, parameters of size about 0.2): the only difference left is float32
    summation order (two shard sums averaged by the all-reduce vs one sum over the batch), a
    few ulps (1.5e-8 each) per step; measured 1.5e-8. Weighting each rank's penalty by its own
    annotated count instead of the global count (the naive per-rank mean) is 1.3e-4 off, so the
    tolerance tells the two apart by two orders of magnitude.
    """
    completed, _, out = two_process_run
    assert (out / "no_batchnorm.pt").exists(), completed.stdout + completed.stderr
    torch.manual_seed(0)
    reference = ddp_worker.train(ddp_worker.tiny_conv(), ddp_worker.global_batches())
    trained = torch.load(out / "no_batchnorm.pt", weights_only=True)
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(trained[name], value, atol=1e-6, rtol=0)

    torch.manual_seed(0)
    model = ddp_worker.small_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=ddp_worker.LR)
    model.train()
    for images, targets, masks, has_mask, _ in ddp_worker.global_batches():
        optimizer.zero_grad()
        for rank in range(2):
            rows = shard_rows(len(targets), DistributedContext(rank, 2, rank))
            result = guided_loss(
                model,
                images[rows],
                targets[rows],
                masks[rows],
                has_mask[rows],
                RRRLoss(),
                ddp_worker.LAM,
                ce_weight=2 * len(targets[rows]) / len(targets),
                guidance_weight=2 * int(has_mask[rows].sum()) / int(has_mask.sum()),
            )
            (result.total / 2).backward()  # DDP averages over the 2 ranks
        optimizer.step()
    trained = torch.load(out / "batchnorm.pt", weights_only=True)
    for name, value in model.named_parameters():
        torch.testing.assert_close(trained[name], value.detach(), atol=1e-6, rtol=0)


def test_synced_buffers_are_the_ranks_mean_on_every_rank(two_process_run):
    """BatchNorm running averages: each rank's own during training, their mean after sync."""
    _, _, out = two_process_run
    before = [torch.load(out / f"batchnorm_buffers_rank{r}.pt", weights_only=True) for r in range(2)]
    after = [torch.load(out / f"batchnorm_synced_rank{r}.pt", weights_only=True) for r in range(2)]
    assert not torch.equal(before[0]["features.0.1.running_mean"], before[1]["features.0.1.running_mean"])
    for name, value in before[0].items():
        assert torch.equal(after[0][name], after[1][name]), name
        if value.is_floating_point():
            torch.testing.assert_close(after[0][name], (value + before[1][name]) / 2, rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(after[0][name], value)


def test_one_rank_asking_to_stop_stops_every_rank_at_the_same_batch(two_process_run):
    import json

    _, _, out = two_process_run
    results = [json.loads((out / f"stop_rank{r}.json").read_text()) for r in range(2)]
    for result in results:
        assert result["stopped"] == 1.0
        assert result["n_images"] == 2 * ddp_worker.BATCH  # two global batches, then the stop
    assert results[0] == results[1]  # global numbers: the same on both ranks


def test_a_rank_that_raises_ends_the_run_with_its_message(two_process_run):
    completed, seconds, out = two_process_run
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert f"injected fault on rank {FAULT_RANK}" in output
    # torchrun's summary names the rank that failed first (its wording: "Root Cause" since 1.10)
    assert "Root Cause" in output or "ChildFailedError" in output
    assert not list(out.glob("finished_rank*")), "a rank carried on past the fault"
    assert seconds < LAUNCH_TIMEOUT_S - 30  # nobody hung until a timeout


def test_rank_shares_are_disjoint_and_together_the_one_process_order():
    class Fixed(torch.utils.data.Sampler):
        def __init__(self, order):
            self.order = order

        def __len__(self):
            return len(self.order)

        def __iter__(self):
            return iter(self.order)

    order = [7, 3, 3, 9, 0, 1, 3, 5, 2, 8, 6]  # an oversampled order: 3 drawn three times
    shares = [list(RankShareSampler(Fixed(order), rank, 3)) for rank in range(3)]
    assert [len(s) for s in shares] == [3, 3, 3] == [len(RankShareSampler(Fixed(order), r, 3)) for r in range(3)]
    merged = [shares[i % 3][i // 3] for i in range(9)]
    assert merged == order[:9]  # draw for draw the one-process order, the last 11 mod 3 left out
    with pytest.raises(ValueError):
        RankShareSampler(Fixed(order), 3, 3)


def test_rank_batches_of_the_oversampled_order_partition_the_global_batches():
    """Per-rank batches of b rows are the global batches of W x b rows, split by position mod W."""
    from app.engine.oversampling import AnnotatedOversampler

    class Data:
        def __len__(self):
            return 40

        def annotated_indices(self):
            return [1, 2]

    def order(rank, world):
        base = AnnotatedOversampler(Data(), 10.0, torch.Generator().manual_seed(5))
        return list(RankShareSampler(base, rank, world)) if world > 1 else list(base)

    single = order(0, 1)
    ranks = [order(r, 2) for r in range(2)]
    for k in range(5):
        global_batch = single[8 * k : 8 * (k + 1)]
        assert ranks[0][4 * k : 4 * (k + 1)] == global_batch[0::2]
        assert ranks[1][4 * k : 4 * (k + 1)] == global_batch[1::2]


def test_one_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not launched_by_torchrun()
    assert all_reduce_sum([1, 2.5], SINGLE_PROCESS) == [1.0, 2.5]
    assert not SINGLE_PROCESS.enabled and SINGLE_PROCESS.is_main


def test_one_process_step_is_the_plain_guided_step():
    """TrainingStep without torchrun: the same weights as guided_loss, backward, step."""
    batches = ddp_worker.global_batches(steps=2)
    torch.manual_seed(0)
    stepped = ddp_worker.tiny_conv()
    train_one_epoch(
        stepped,
        batches,
        torch.optim.SGD(stepped.parameters(), lr=0.05),
        device=torch.device("cpu"),
        guidance=RRRLoss(),
        lam=100.0,
        step=None,
    )
    torch.manual_seed(0)
    plain = ddp_worker.tiny_conv()
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.05)
    for images, targets, masks, has_mask, _ in batches:
        optimizer.zero_grad()
        guided_loss(plain, images, targets, masks, has_mask, RRRLoss(), 100.0).total.backward()
        optimizer.step()
    for a, b in zip(stepped.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError):
        train_one_epoch(
            plain,
            batches,
            optimizer,
            device=torch.device("cpu"),
            step=TrainingStep(stepped, None, 0.0, device=torch.device("cpu")),
        )


def test_buffer_sync_keyword_follows_the_installed_ddp():
    """torch < 2.14 has only ``broadcast_buffers``; 2.14 renamed it ``forward_sync_buffers``. The
    keyword comes from DDP's signature, so either release gets the one it knows."""
    from torch.nn.parallel import DistributedDataParallel

    from app.engine.guided_step import no_forward_buffer_sync

    class OldDDP:
        def __init__(self, module, device_ids=None, broadcast_buffers=True):
            pass

    class NewDDP:
        def __init__(self, module, device_ids=None, broadcast_buffers=True, forward_sync_buffers=True):
            pass

    assert no_forward_buffer_sync(OldDDP) == {"broadcast_buffers": False}
    assert no_forward_buffer_sync(NewDDP) == {"forward_sync_buffers": False}
    (keyword,) = no_forward_buffer_sync()
    assert keyword in inspect.signature(DistributedDataParallel.__init__).parameters
