"""GPU figures for guided training: images/s, guided/plain step ratio, peak memory.

For each model, precision (fp32, bf16, fp16) and share of annotated rows it times training steps
through the trainer's own step (``app.engine.guided_step.TrainingStep``) on synthetic 224 px batches:
plain steps (nothing annotated: one forward, one backward) and guided steps (RRR on the
annotated rows, double backpropagation), alternating so drift hits both alike, and reports the
medians and the peak GPU memory of the guided steps. Then, for the largest model, whether
``channels_last`` and ``cudnn.benchmark`` help the guided step (double backward through
convolutions is sensitive to both, so they are measured rather than assumed).

    python bench/gpu_bench.py                          # what bench/gpu_check.sh runs
    python bench/gpu_bench.py --device cpu --models small_cnn --size 32 --amp off bf16 --steps 2

Stops starting new configurations after ``--budget-s`` seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch  # noqa: E402

from app.engine.amp import AmpPolicy  # noqa: E402
from app.engine.guided_step import TrainingStep  # noqa: E402
from loss import build_guidance  # noqa: E402
from models import build_model, device_label, pick_device  # noqa: E402

NUM_CLASSES = 10


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model_name: str, amp: str, fraction: float, args, device, channels_last=False, benchmark=False) -> dict:
    torch.backends.cudnn.benchmark = benchmark
    torch.manual_seed(0)
    model = build_model(model_name, NUM_CLASSES).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step = TrainingStep(model, build_guidance("rrr", model), 10.0, device=device, amp=AmpPolicy.for_device(amp, device))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, NUM_CLASSES, (args.batch,), device=device)
    masks = torch.zeros(args.batch, args.size, args.size, device=device)
    masks[:, : args.size // 4, : args.size // 4] = 1.0
    annotated = torch.zeros(args.batch, dtype=torch.bool, device=device)
    annotated[: max(1, round(fraction * args.batch))] = True
    nothing = torch.zeros_like(annotated)
    plain_times, guided_times = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for number in range(args.warmup + args.steps):
        for has_mask, times in ((nothing, plain_times), (annotated, guided_times)):
            synchronize(device)
            started = time.perf_counter()
            step(images, targets, masks, has_mask, optimizer)
            synchronize(device)
            if number >= args.warmup:
                times.append(time.perf_counter() - started)
    plain, guided = statistics.median(plain_times), statistics.median(guided_times)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"plain_ips": args.batch / plain, "guided_ips": args.batch / guided, "ratio": guided / plain, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--amp", nargs="+", default=["off", "bf16", "fp16"])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.05, 1.0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=200.0)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the layout configurations")
    args = parser.parse_args()
    device = pick_device(args.device)
    started = time.monotonic()
    print(f"device: {device_label(device)}; batch {args.batch} x {args.size} px, RRR, median of {args.steps} steps")
    print("| model | amp | annotated | plain images/s | guided images/s | guided/plain | peak GiB (guided) |")
    print("|---|---|---|---|---|---|---|")
    amps = [a for a in args.amp if not (a == "fp16" and device.type != "cuda")]
    for model_name in args.models:
        for amp in amps:
            for fraction in args.fractions:
                if time.monotonic() - started > args.budget_s:
                    print(f"(time budget of {args.budget_s:.0f} s spent; later configurations left out)")
                    return
                r = measure(model_name, amp, fraction, args, device)
                print(
                    f"| {model_name} | {amp} | {fraction:.0%} | {r['plain_ips']:.0f} | {r['guided_ips']:.0f} | "
                    f"{r['ratio']:.2f}x | {r['peak_gib']:.2f} |",
                    flush=True,
                )
    if device.type != "cuda":
        return
    print(
        f"\nLayout and autotuning, guided step at 100 % annotated, largest model; the configurations "
        f"measured in turn {args.repeats} times (one H200 gave 280 and 1200 images/s for the same "
        "configuration in one process, so one pass proves nothing):"
    )
    print("| model | amp | channels_last | cudnn.benchmark | guided images/s, each pass | median |")
    print("|---|---|---|---|---|---|")
    model_name = args.models[-1]
    configurations = [
        (amp, channels_last, benchmark)
        for amp in ("off", amps[-1])
        for channels_last, benchmark in ((False, False), (True, False), (False, True), (True, True))
    ]
    passes: dict = {c: [] for c in configurations}
    for _ in range(args.repeats):
        for amp, channels_last, benchmark in configurations:
            if time.monotonic() - started > args.budget_s:
                break
            r = measure(model_name, amp, 1.0, args, device, channels_last=channels_last, benchmark=benchmark)
            passes[(amp, channels_last, benchmark)].append(r["guided_ips"])
    for (amp, channels_last, benchmark), values in passes.items():
        if values:
            shown = " / ".join(f"{v:.0f}" for v in values)
            print(f"| {model_name} | {amp} | {channels_last} | {benchmark} | {shown} | {statistics.median(values):.0f} |")


if __name__ == "__main__":
    main()
