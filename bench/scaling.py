"""Throughput of guided training with 1 vs N data-parallel processes (torchrun, DDP).

For each model and process count it starts ``torchrun --standalone --nproc_per_node N`` on this
script's worker, which trains guided steps (``app.engine.guided_step.TrainingStep``, the trainer's
step) on synthetic batches of a fixed *global* batch size, each process taking its rows, and
prints the median images/s. One process runs the same step without a process group. On a CPU
the processes use gloo and ``--threads`` intra-op threads each; on GPUs (``--device cuda``)
NCCL and one GPU per process.

    python bench/scaling.py                                 # small_cnn and resnet18, 1 and 2 processes, CPU
    python bench/scaling.py --threads-baseline              # adds 1 process x 2 threads (same cores as 2 x 1)
    python bench/scaling.py --device cuda --procs 1 2 4 8 --models resnet18 resnet50 --size 224 --batch 256

Numbers on a shared machine move with its load; steps alternate nothing here, so run it on an
otherwise idle machine, and compare the process counts within one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NUM_CLASSES = 10
DEFAULT_SHAPES = {"small_cnn": (64, 32), "resnet18": (32, 64), "resnet50": (32, 64)}  # (global batch, side) on a CPU


def worker(args: argparse.Namespace) -> None:
    """Runs inside torchrun (or alone for one process): time guided steps, rank 0 prints JSON."""
    import torch

    from app.engine.amp import AmpPolicy
    from app.engine.distributed import process_group, shard_rows
    from app.engine.guided_step import TrainingStep
    from loss import build_guidance
    from models import build_model

    torch.set_num_threads(args.threads)
    with process_group(args.device) as context:
        device = context.device(args.device)
        torch.manual_seed(0)
        model = build_model(args.model, NUM_CLASSES).to(device).train()
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        guidance = build_guidance(args.guidance, model)
        step = TrainingStep(model, guidance, 10.0, device=device, context=context, amp=AmpPolicy.for_device(args.amp, device))
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(1)
        images = torch.randn(args.batch, 3, args.size, args.size, generator=generator)
        targets = torch.randint(0, NUM_CLASSES, (args.batch,), generator=generator)
        masks = torch.zeros(args.batch, args.size, args.size)
        masks[:, : args.size // 4, : args.size // 4] = 1.0
        has_mask = torch.zeros(args.batch, dtype=torch.bool)
        has_mask[: max(1, round(args.annotated * args.batch))] = True
        has_mask = has_mask[torch.randperm(args.batch, generator=generator)]
        rows = shard_rows(args.batch, context)
        shard = [t[rows].to(device) for t in (images, targets, masks, has_mask)]
        if args.channels_last:
            shard[0] = shard[0].contiguous(memory_format=torch.channels_last)
        times = []
        for number in range(args.warmup + args.steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            step(*shard, optimizer)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if number >= args.warmup:
                times.append(time.perf_counter() - started)
        if context.is_main:
            seconds = statistics.median(times)
            print(
                json.dumps(
                    {
                        "model": args.model,
                        "processes": context.world_size,
                        "threads": args.threads,
                        "batch": args.batch,
                        "size": args.size,
                        "annotated": args.annotated,
                        "step_ms": 1000 * seconds,
                        "images_per_s": args.batch / seconds,
                    }
                )
            )


def launch(args: argparse.Namespace, model: str, procs: int, threads: int) -> dict:
    batch, size = DEFAULT_SHAPES.get(model, (32, 64))
    batch, size = args.batch or batch, args.size or size
    worker_args = [
        str(Path(__file__).resolve()),
        "--worker",
        "--model",
        model,
        "--batch",
        str(batch),
        "--size",
        str(size),
        "--threads",
        str(threads),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--annotated",
        str(args.annotated),
        "--device",
        args.device,
        "--amp",
        args.amp,
        "--guidance",
        args.guidance,
    ] + (["--channels-last"] if args.channels_last else [])
    if procs == 1:
        command = [sys.executable] + worker_args
    else:
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [str(torchrun), "--standalone", "--nproc_per_node", str(procs)] + worker_args
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet18"])
    parser.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    parser.add_argument(
        "--threads-baseline", action="store_true", help="also time 1 process with threads x max(procs) threads (the same cores)"
    )
    parser.add_argument("--batch", type=int, help="global batch (default: per model)")
    parser.add_argument("--size", type=int, help="input side (default: per model)")
    parser.add_argument("--annotated", type=float, default=0.25, help="share of annotated rows")
    parser.add_argument("--guidance", default="rrr")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="off")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    print("| model | global batch x side | processes x threads | step ms | images/s | speed-up |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        runs = [(procs, args.threads) for procs in args.procs]
        if args.threads_baseline:
            runs.append((1, args.threads * max(args.procs)))
        base = None
        for procs, threads in runs:
            result = launch(args, model, procs, threads)
            base = base or result["images_per_s"]
            print(
                f"| {model} | {result['batch']} x {result['size']} | {procs} x {threads} | "
                f"{result['step_ms']:.0f} | {result['images_per_s']:.0f} | {result['images_per_s'] / base:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
