"""How late do the Tk loop's `after()` ticks fire while the real trainer trains in the background?

    DISPLAY=:57 .venv/bin/python bench/ui_latency.py [--epochs 3] [--idle-seconds 5]

Builds the real main window (`ui.desktop.build_app`: the real event pump, live plots, progress and
log), measures an idle baseline, then presses Train on the demo data (no feedback rounds) and,
for the whole time batches are being trained, schedules `after(20)` again and again and records
how much later than 20 ms each callback runs. That lateness is what a user feels as lag
(mouse, redraws). Prints count, median, p95, p99 and max lateness in ms for both phases; the
target while training is p99 < 50 ms.

Lateness comes from the Tk thread's own work (handling engine events, blitting the plots) and
from waiting for the GIL while the training thread runs Python code between PyTorch kernels.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TICK_MS = 20
TARGET_P99_MS = 50.0


def percentile(values, share: float) -> float:
    """Nearest-rank percentile of `values` (share in [0, 1])."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(round(share * len(ordered) + 0.5))))
    return ordered[rank - 1]


def summary(name: str, late_ms) -> str:
    if not late_ms:
        return f"{name}: no ticks"
    return (
        f"{name}: count {len(late_ms)}, median {statistics.median(late_ms):.1f} ms, "
        f"p95 {percentile(late_ms, 0.95):.1f} ms, p99 {percentile(late_ms, 0.99):.1f} ms, "
        f"max {max(late_ms):.1f} ms"
    )


class TickProbe:
    """Schedules after(TICK_MS) repeatedly on `widget`; `late_ms` collects lateness per tick
    while `recording` is true."""

    def __init__(self, widget) -> None:
        self.widget = widget
        self.late_ms: list[float] = []
        self.recording = False
        self._due = 0.0
        self._after = None

    def start(self) -> None:
        self._due = time.perf_counter() + TICK_MS / 1000
        self._after = self.widget.after(TICK_MS, self._tick)

    def stop(self) -> None:
        if self._after is not None:
            self.widget.after_cancel(self._after)
            self._after = None

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.recording:
            self.late_ms.append(max(0.0, (now - self._due) * 1000))
        self._due = now + TICK_MS / 1000
        self._after = self.widget.after(TICK_MS, self._tick)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs to train (default 3)")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="length of the idle baseline (default 5 s)")
    parser.add_argument("--demo-dir", default=None, help="demo data folder (default: the cache)")
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="torch.set_num_threads before training (default: PyTorch's choice)"
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        parser.error("needs an X display (e.g. Xvfb :57 & DISPLAY=:57)")

    import torch

    from datasets import ensure_demo_data
    from ui.desktop import build_app

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    demo = ensure_demo_data(args.demo_dir) if args.demo_dir else ensure_demo_data()
    sessions = tempfile.mkdtemp(prefix="latency-sessions-")
    window = build_app(sessions_root=sessions, demo_dir=str(demo))
    window.root.geometry("1400x860+0+0")
    form = window.settings.vars
    form["epochs"].set(str(args.epochs))
    form["feedback_every"].set("0")
    form["model"].set(args.model)

    probe = TickProbe(window)
    idle: list[float] = []
    phase = {"name": "idle", "started": time.perf_counter(), "training_s": 0.0}

    def watch() -> None:
        now = time.perf_counter()
        if phase["name"] == "idle" and now - phase["started"] >= args.idle_seconds:
            idle.extend(probe.late_ms)
            probe.late_ms.clear()
            probe.recording = False
            phase["name"] = "loading"
            window.train_button.invoke()
        elif phase["name"] == "loading" and "BatchFinished" in window.event_counts:
            probe.recording = True  # from the first trained batch to the end of training
            phase["name"], phase["started"] = "training", now
        elif phase["name"] in ("loading", "training") and (window.finished is not None or window.last_failure is not None):
            probe.recording = False
            phase["training_s"] = now - phase["started"]
            phase["name"] = "done"
            probe.stop()
            window.on_close()
            return
        window.after(100, watch)

    probe.recording = True
    probe.start()
    window.after(100, watch)
    window.mainloop()

    if window.last_failure is not None:
        print(f"training failed: {window.last_failure.message}", file=sys.stderr)
        return 1
    training = probe.late_ms
    print(
        f"device: {window.device}; torch threads: {torch.get_num_threads()}; "
        f"CPUs: {os.cpu_count()}; model {args.model}, {args.epochs} epochs on the demo data"
    )
    print(f"after({TICK_MS}) lateness, idle window:      " + summary("idle", idle))
    print(f"after({TICK_MS}) lateness, while training:   " + summary("training", training))
    print(
        f"training time measured: {phase['training_s']:.1f} s, batches "
        f"{window.event_counts['BatchFinished']}, plot full redraws {window.plots.full_draws},"
        f" blits {window.plots.blits}"
    )
    p99 = percentile(training, 0.99)
    verdict = "meets" if p99 < TARGET_P99_MS else "MISSES"
    print(f"p99 while training {p99:.1f} ms {verdict} the target of {TARGET_P99_MS:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
