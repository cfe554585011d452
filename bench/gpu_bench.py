"""GPU figures for guided training: step time, guided/plain ratio, spread, peak memory.

For each model, precision (fp32, bf16, fp16) and share of annotated rows, one model is trained
through the trainer's own step (``app.engine.guided_step.TrainingStep``) on a synthetic batch,
and three kinds of step are interleaved, round after round, so that drift (clocks, other jobs)
hits them alike: plain (nothing annotated: one forward, one backward), guided with the exact
penalty gradient (double backward) and guided with the finite-difference one
(``loss.finite_difference``). Every step is timed with CUDA events (on a CPU with the process's
CPU clock), after ``--warmup`` untimed rounds; the table shows the median step, the spread
(25th-75th percentile, and min-max) and the ratios of medians measured in the same run.

Then the bimodality check (the H200 of 2026-11-29 gave 263-300 and 1016-1202 guided images/s
for one configuration in one process, ``docs/gpu_check-h200.log``): the same configuration is
measured ``--repeats`` times with a fresh model, under four conditions that separate the
suspects, each pass's median and its within-pass spread printed:

- ``as is``: what the first table does;
- ``empty_cache``: ``torch.cuda.empty_cache()`` before the pass (the caching allocator's free
  memory decides which cuDNN algorithms fit their workspace);
- ``deterministic``: ``torch.backends.cudnn.deterministic = True`` (fixed algorithms);
- ``benchmark``: ``torch.backends.cudnn.benchmark = True`` (measured algorithms).

A bimodality that follows the pass (every step of a pass slow or fast) and disappears under
``deterministic`` or ``benchmark`` is cuDNN's algorithm choice; one within a pass is clocks or
other work on the GPU. The machine's clocks and the CUDA/cuDNN versions are printed first.

    python bench/gpu_bench.py                          # what bench/gpu_check.sh runs
    python bench/gpu_bench.py --device cpu --models small_cnn --size 32 --amp off --steps 3 --warmup 1 --repeats 1

Stops starting new configurations of the step table after 70 % of ``--budget-s`` seconds, and
the bimodality check at the budget.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import torch  # noqa: E402

from app.engine.amp import AmpPolicy  # noqa: E402
from app.engine.guided_step import TrainingStep  # noqa: E402
from loss import PENALTY_GRADIENTS, build_guidance  # noqa: E402
from models import build_model, device_label, pick_device  # noqa: E402

NUM_CLASSES = 10
KINDS = ("plain",) + PENALTY_GRADIENTS  # plain, exact, finite_difference
TABLE_SHARE = 0.7  # of --budget-s for the step table; the rest is kept for the bimodality check


class StepTimer:
    """Times steps with CUDA events (queued, read once at the end) or the CPU clock."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.pending: list = []

    def time(self, run) -> None:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            self.pending.append((start, end))
        else:
            started = time.process_time()
            run()
            self.pending.append(time.process_time() - started)

    def milliseconds(self) -> list:
        if self.cuda:
            torch.cuda.synchronize()
            return [start.elapsed_time(end) for start, end in self.pending]
        return [seconds * 1000.0 for seconds in self.pending]


def spread(values: list) -> dict:
    """Median, quartiles, min and max of step times (ms)."""
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {"median": statistics.median(ordered), "p25": quartiles[0], "p75": quartiles[2], "min": ordered[0], "max": ordered[-1]}


def setup(model_name: str, amp: str, fraction: float, args, device):
    torch.manual_seed(0)
    model = build_model(model_name, NUM_CLASSES).to(device).train()
    policy = AmpPolicy.for_device(amp, device)
    guidance = build_guidance("rrr", model)
    # One step object per kind (each keeps its own fp16 loss scale); "plain" is a step with no row annotated.
    steps = {}
    for kind in KINDS:
        how = "exact" if kind == "plain" else kind
        steps[kind] = TrainingStep(model, guidance, 10.0, device=device, amp=policy, penalty_gradient=how)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    targets = torch.randint(0, NUM_CLASSES, (args.batch,), device=device)
    masks = torch.zeros(args.batch, args.size, args.size, device=device)
    masks[:, : args.size // 4, : args.size // 4] = 1.0
    annotated = torch.zeros(args.batch, dtype=torch.bool, device=device)
    annotated[: max(1, round(fraction * args.batch))] = True
    rows = {"plain": torch.zeros_like(annotated), "exact": annotated, "finite_difference": annotated}
    return steps, optimizer, (images, targets, masks), rows


def measure(model_name: str, amp: str, fraction: float, args, device, kinds=KINDS) -> dict:
    """Interleaved steps of each kind; per kind the spread of its step times and peak memory."""
    steps, optimizer, (images, targets, masks), rows = setup(model_name, amp, fraction, args, device)
    timers = {kind: StepTimer(device) for kind in kinds}
    for number in range(args.warmup + args.steps):
        for kind in kinds:

            def run(kind=kind):
                steps[kind](images, targets, masks, rows[kind], optimizer)

            if number >= args.warmup:
                timers[kind].time(run)
            else:
                run()
    result = {kind: spread(timers[kind].milliseconds()) for kind in kinds}
    if device.type == "cuda":
        for kind in kinds:
            torch.cuda.reset_peak_memory_stats(device)
            steps[kind](images, targets, masks, rows[kind], optimizer)
            torch.cuda.synchronize(device)
            result[kind]["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def cell(times: dict) -> str:
    """median [p25-p75] (min-max) of one kind's step times."""
    return f"{times['median']:.1f} [{times['p25']:.1f}-{times['p75']:.1f}] ({times['min']:.1f}-{times['max']:.1f})"


def describe_machine(device: torch.device) -> None:
    print(f"device: {device_label(device)}; torch {torch.__version__}", end="")
    if device.type != "cuda":
        print()
        return
    print(f", CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    try:
        query = "clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu"
        line = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv"], capture_output=True, text=True, timeout=10
        ).stdout
        print("nvidia-smi: " + " | ".join(line.strip().splitlines()))
    except (OSError, subprocess.SubprocessError):
        print("nvidia-smi: not available")


def step_table(args, device, started: float) -> None:
    print(
        f"\nbatch {args.batch} x {args.size} px, RRR, {args.warmup} warm-up + {args.steps} timed rounds of "
        "interleaved plain / exact / finite-difference steps; step ms: median [p25-p75] (min-max)"
    )
    print("| model | amp | annotated | plain | exact | finite difference | exact/plain | f.d./plain | peak GiB exact / f.d. |")
    print("|---|---|---|---|---|---|---|---|---|")
    amps = [a for a in args.amp if not (a == "fp16" and device.type != "cuda")]
    for model_name in args.models:
        for amp in amps:
            for fraction in args.fractions:
                share = TABLE_SHARE if args.repeats > 0 else 1.0
                if time.monotonic() - started > share * args.budget_s:
                    print(f"({share:.0%} of the {args.budget_s:.0f} s budget spent; later configurations left out)")
                    return
                r = measure(model_name, amp, fraction, args, device)
                plain, exact, difference = (cell(r[kind]) for kind in KINDS)

                peak_exact = r["exact"].get("peak_gib", float("nan"))
                peaks = f"{peak_exact:.2f} / {r['finite_difference'].get('peak_gib', float('nan')):.2f}"
                print(
                    f"| {model_name} | {amp} | {fraction:.0%} | {plain} | {exact} | {difference} | "
                    f"{r['exact']['median'] / r['plain']['median']:.2f}x | "
                    f"{r['finite_difference']['median'] / r['plain']['median']:.2f}x | {peaks} |",
                    flush=True,
                )


def bimodality(args, device, started: float) -> None:
    model_name = args.models[-1]
    print(
        f"\nBimodality: {model_name}, fp32, 100 % annotated, exact guided step alone, {args.repeats} passes per "
        "condition, a fresh model each pass; per pass the median step ms and [min-max]"
    )
    print("| condition | passes: median [min-max] |")
    print("|---|---|")
    conditions = ("as is", "empty_cache", "deterministic", "benchmark")
    for condition in conditions:
        passes = []
        for _ in range(args.repeats):
            if time.monotonic() - started > args.budget_s:
                break
            torch.backends.cudnn.deterministic = condition == "deterministic"
            torch.backends.cudnn.benchmark = condition == "benchmark"
            if condition == "empty_cache" and device.type == "cuda":
                torch.cuda.empty_cache()
            try:
                r = measure(model_name, "off", 1.0, args, device, kinds=("exact",))["exact"]
            finally:
                torch.backends.cudnn.deterministic = False
                torch.backends.cudnn.benchmark = False
            passes.append(f"{r['median']:.1f} [{r['min']:.1f}-{r['max']:.1f}]")
        if passes:
            print(f"| {condition} | {' / '.join(passes)} |", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--amp", nargs="+", default=["off", "bf16", "fp16"])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.05, 1.0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=20, help="timed rounds (one step of each kind per round)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first (cuDNN choice, allocator)")
    parser.add_argument("--budget-s", type=float, default=200.0)
    parser.add_argument("--repeats", type=int, default=3, help="passes per condition of the bimodality check (0: none)")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    started = time.monotonic()
    describe_machine(device)
    step_table(args, device, started)
    if args.repeats > 0:
        bimodality(args, device, started)


if __name__ == "__main__":
    main()
