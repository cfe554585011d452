"""Does keeping freed memory in the process (`app.engine.allocator`) make training steps cheaper?

Runs `bench/step_cost.py` in fresh processes, alternately with glibc's own malloc thresholds
(`--allocator default`) and with the ones training runs set (`--allocator keep`), `--repeats`
times each, and prints per configuration the median over the repeats of the plain and guided
step times, the guided/plain ratio and the minor page faults per guided step, for both.

    PYTHONPATH=. python bench/allocator_cost.py
    PYTHONPATH=. python bench/allocator_cost.py --repeats 3 -- --models small_cnn --losses rrr

Arguments after `--` go to step_cost.py (default: `--threads 1 --clock cpu --steps 10
--fractions 1 0.05 --losses rrr punisher`).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

STEP_COST = Path(__file__).with_name("step_cost.py")
DEFAULT_STEP_ARGS = "--threads 1 --clock cpu --steps 10 --fractions 1 0.05 --losses rrr punisher".split()
ROW = re.compile(r"^(\S+)\s+(\d+x\d+)\s+(\S+)\s+(\d+)%\s+([\d.]+)\s+([\d.]+)\s+\d+%\s+([\d.]+)x\s+(\d+)\s*$")

Key = Tuple[str, str, str, str]  # model, shape, loss, annotated %


def run_once(allocator: str, step_args: List[str]) -> Dict[Key, Tuple[float, float, float, float]]:
    """One step_cost.py process: {configuration: (plain ms, guided ms, ratio, faults per guided step)}."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    command = [sys.executable, str(STEP_COST), "--allocator", allocator, *step_args]
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in output.splitlines():
        match = ROW.match(line)
        if match:
            model, shape, loss, share, plain, guided, ratio, faults = match.groups()
            rows[(model, shape, loss, share)] = (float(plain), float(guided), float(ratio), float(faults))
    if not rows:
        raise SystemExit(f"no rows parsed from step_cost.py:\n{output}")
    return rows


def main(argv: List[str]) -> int:
    if "--" in argv:
        split = argv.index("--")
        argv, step_args = argv[:split], argv[split + 1 :]
    else:
        step_args = list(DEFAULT_STEP_ARGS)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="processes per allocator setting, alternating")
    args = parser.parse_args(argv)
    print(f"step_cost.py {' '.join(step_args)}; {args.repeats} processes per setting, alternating")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    results: Dict[str, List[Dict[Key, Tuple[float, float, float, float]]]] = {"default": [], "keep": []}
    for repeat in range(args.repeats):
        order = ("default", "keep") if repeat % 2 == 0 else ("keep", "default")
        for allocator in order:
            results[allocator].append(run_once(allocator, step_args))
            print(f"  repeat {repeat + 1}: {allocator} done", flush=True)
    header = (
        f"{'model':<10} {'shape':>6} {'loss':<9} {'annot.':>6} | {'plain ms':>17} | {'guided ms':>17} | "
        f"{'ratio':>13} | {'faults/guided step':>18}"
    )
    print(header)
    print(f"{'':<35} | {'default -> keep':>17} | {'default -> keep':>17} | {'default->keep':>13} | {'default -> keep':>18}")
    print("-" * len(header))
    for key in results["default"][0]:
        medians = {
            allocator: [statistics.median(run[key][column] for run in runs) for column in range(4)]
            for allocator, runs in results.items()
        }
        d, k = medians["default"], medians["keep"]
        model, shape, loss, share = key
        print(
            f"{model:<10} {shape:>6} {loss:<9} {share:>5}% | {d[0]:>7.1f} -> {k[0]:>7.1f} | {d[1]:>7.1f} -> {k[1]:>7.1f} | "
            f"{d[2]:>4.2f}x -> {k[2]:>4.2f}x | {d[3]:>7.0f} -> {k[3]:>7.0f}"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
