"""Cost of a guided training step relative to a plain one.

For each model, guidance loss and share of annotated rows, times a full training step
(forward + backward + optimizer step through ``loss.guided_loss``) with the annotated rows
penalised, against the same step with nothing annotated (a plain CE step: one forward, no
double backpropagation). Plain and guided steps alternate so that drift in machine load hits
both alike; the table shows the median of the timed steps after warm-up.

Targets (issue 23): <= 1.15x at 5 % annotated, <= 1.8x at 100 % annotated. The spread column is
the guided steps' interquartile range over their median, the load the machine's 1-minute load
average at the start and end of the run (this bench is read on shared machines).

Run from the repository root:

    python bench/step_cost.py                       # small_cnn and resnet18, CPU or CUDA
    python bench/step_cost.py --models small_cnn --steps 20 --threads 2
    python bench/step_cost.py --threads 1 --clock cpu   # steadier on a busy, shared CPU

At 5 %, resnet18's default batch of 32 means 2 annotated rows; double backpropagation has a
fixed cost per parameter (gradient accumulation of weight-sized tensors) that such a tiny
sub-batch cannot amortise on a CPU, so try --batch 64 there as well. At 64 px the last
stage is 2 x 2 pixels, so the network is weight-bound: profiled, most of the 5 % overhead is
weight-sized work (the double backward's weight-gradient convolutions over 512 x 512 x 3 x 3
kernels, and summing those gradients); `--size 224 --fractions 1 0.05` shows resnet18 at its
native input size.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import time

import numpy as np  # noqa: E402
import torch  # noqa: E402

from app.engine.allocator import keep_freed_memory  # noqa: E402
from loss import (  # noqa: E402
    DEFAULT_LAMBDAS,
    DEFAULT_PENALTY_GRADIENT,
    GUIDANCE_NAMES,
    PENALTY_GRADIENTS,
    build_guidance,
    guided_loss,
)
from models import build_model, device_label, pick_device  # noqa: E402

NUM_CLASSES = 10
FRACTIONS = (1.0, 0.5, 0.25, 0.05)
TARGET_AT_5 = 1.15
TARGET_AT_100 = 1.8
# Per-model defaults (batch, input size): small enough for a CPU, as in the cost notes.
DEFAULT_SHAPES = {"small_cnn": (64, 32), "resnet18": (32, 64)}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def synthetic_batch(batch: int, size: int, device: torch.device):
    """Random normalised images, labels, and a mask per row: red top-left quarter, green centre."""
    images = torch.randn(batch, 3, size, size, device=device)
    targets = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    masks = torch.zeros(batch, size, size, device=device)
    masks[:, : size // 4, : size // 4] = 1.0
    masks[:, size // 3 : 2 * size // 3, size // 3 : 2 * size // 3] = -1.0
    return images, targets, masks


def annotated_rows(batch: int, fraction: float, device: torch.device) -> torch.Tensor:
    """A has_mask vector with round(fraction * batch) rows set (at least one)."""
    count = max(1, round(fraction * batch))
    has_mask = torch.zeros(batch, dtype=torch.bool, device=device)
    has_mask[:count] = True
    return has_mask


def timed_step(
    model,
    optimizer,
    images,
    targets,
    masks,
    has_mask,
    guidance,
    lam,
    device,
    clock=time.perf_counter,
    shared_forward=None,
    penalty_gradient="exact",
) -> float:
    """One training step; returns its duration in milliseconds on ``clock``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    optimizer.zero_grad(set_to_none=True)
    result = guided_loss(
        model, images, targets, masks, has_mask, guidance, lam, shared_forward, penalty_gradient=penalty_gradient
    )
    result.total.backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (clock() - start) * 1000.0


def minor_faults() -> int:
    """Minor page faults of this process so far (pages the kernel had to map in again)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(model_name, loss_name, fraction, args, device) -> tuple[float, float, float, float]:
    """Median plain and guided step times (ms) for one configuration, the guided steps'
    interquartile range over their median, and the minor page faults per timed guided step."""
    default_batch, default_size = DEFAULT_SHAPES.get(model_name, (32, 64))
    batch = args.batch or default_batch
    size = args.size or default_size
    seed_everything(args.seed)
    model = build_model(model_name, NUM_CLASSES).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    guidance = build_guidance(loss_name, model)
    lam = DEFAULT_LAMBDAS[loss_name]
    images, targets, masks = synthetic_batch(batch, size, device)
    nothing = torch.zeros(batch, dtype=torch.bool, device=device)
    some = annotated_rows(batch, fraction, device)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    shared_forward = {"auto": None, "shared": True, "second": False}[args.forward]
    if shared_forward and loss_name == "gradcam":
        shared_forward = None  # Grad-CAM always runs its own forward
    plain, guided, faults = [], [], 0
    for step in range(args.warmup + args.steps):
        plain_ms = timed_step(model, optimizer, images, targets, masks, nothing, guidance, lam, device, clock)
        faults_before = minor_faults()
        guided_ms = timed_step(
            model,
            optimizer,
            images,
            targets,
            masks,
            some,
            guidance,
            lam,
            device,
            clock,
            shared_forward,
            args.penalty_gradient,
        )
        if step >= args.warmup:
            plain.append(plain_ms)
            guided.append(guided_ms)
            faults += minor_faults() - faults_before
    quartiles = statistics.quantiles(guided, n=4) if len(guided) >= 2 else [guided[0]] * 3
    spread = (quartiles[2] - quartiles[0]) / statistics.median(guided)
    return statistics.median(plain), statistics.median(guided), spread, faults / len(guided)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet18"])
    parser.add_argument("--losses", nargs="+", default=list(GUIDANCE_NAMES), choices=GUIDANCE_NAMES)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=None, help="batch size for every model (default: small_cnn 64, others 32)")
    parser.add_argument(
        "--size", type=int, default=None, help="input side in pixels for every model (default: small_cnn 32, others 64)"
    )
    parser.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=list(FRACTIONS),
        help="shares of the batch annotated (default: 1 0.5 0.25 0.05)",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--forward",
        choices=("auto", "shared", "second"),
        default="auto",
        help="where input-gradient losses get their gradients: auto (the shared CE forward "
        "from loss.SHARED_FORWARD_FROM annotated), always shared, or always a second forward",
    )
    parser.add_argument(
        "--penalty-gradient",
        choices=PENALTY_GRADIENTS,
        default=DEFAULT_PENALTY_GRADIENT,
        help="how input-gradient losses take their parameter gradient: exact (double backward) or "
        "finite_difference (loss.finite_difference)",
    )
    parser.add_argument(
        "--allocator",
        choices=("keep", "default"),
        default="keep",
        help="keep: glibc keeps freed memory, as training runs do (app.engine.allocator); default: glibc's own thresholds",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or this process's CPU time (steadier on a busy machine with --threads 1; CPU device only)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = keep_freed_memory() if args.allocator == "keep" else False
    device = pick_device(args.device)
    if args.clock == "cpu" and device.type != "cpu":
        raise SystemExit("--clock cpu measures CPU time; use it with --device cpu")
    print(
        f"device: {device_label(device)}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, {args.clock} clock, {args.warmup} warm-up + "
        f"{args.steps} timed steps (median); {args.forward} forward; {args.penalty_gradient} penalty gradient; "
        f"lambdas {dict(DEFAULT_LAMBDAS)}; allocator {args.allocator}{' (thresholds set)' if kept else ''}"
    )
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    header = (
        f"{'model':<10} {'shape':>10} {'loss':<9} {'annot.':>7} {'plain ms':>9} {'guided ms':>10} "
        f"{'spread':>7} {'ratio':>6} {'faults':>7}"
    )
    print(header)
    print("-" * len(header))
    ratios: dict[float, list[tuple[float, str]]] = {fraction: [] for fraction in args.fractions}
    for model_name in args.models:
        default_batch, default_size = DEFAULT_SHAPES.get(model_name, (32, 64))
        shape = f"{args.batch or default_batch}x{args.size or default_size}"
        for loss_name in args.losses:
            for fraction in args.fractions:
                plain_ms, guided_ms, guided_spread, faults = measure(model_name, loss_name, fraction, args, device)
                ratio = guided_ms / plain_ms
                ratios[fraction].append((ratio, f"{model_name}/{loss_name}"))
                print(
                    f"{model_name:<10} {shape:>10} {loss_name:<9} {fraction:>6.0%} "
                    f"{plain_ms:>9.1f} {guided_ms:>10.1f} {guided_spread:>6.0%} {ratio:>5.2f}x {faults:>7.0f}",
                    flush=True,
                )
    verdicts = []
    for fraction, target in ((0.05, TARGET_AT_5), (1.0, TARGET_AT_100)):
        if ratios.get(fraction):
            worst, where = max(ratios[fraction])
            verdicts.append(
                (
                    worst <= target,
                    f"worst at {fraction:.0%} annotated {worst:.2f}x "
                    f"({where}; target <= {target}x{'' if worst <= target else ', MISSED'})",
                )
            )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if verdicts:
        passed = all(ok for ok, _ in verdicts)
        print(f"verdict: {'PASS' if passed else 'FAIL'} -- " + ", ".join(text for _, text in verdicts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
