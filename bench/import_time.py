"""Wall time of starting the command line and of importing the torch-free modules (issue 25).

Each case runs in a fresh Python process (so nothing is cached in `sys.modules`) and is timed
from the parent, start-up included; the table shows the median of `--runs` runs and whether
torch was loaded. Target: `main.py --help` under 1 s (it loaded torch, torchvision and captum
through the package faces and took about 7 s).

With a display (`$DISPLAY`, e.g. Xvfb) it also times the desktop app: `main.py` with no command,
from the process's start until its main window has had its first `update()` (the moment
`mainloop` would start), in a fresh `$XDG_DATA_HOME` (no sessions; `--data-home DIR` to use one
with a last session to reopen), and says which of torch & co were loaded by then.

Run from the repository root:

    PYTHONPATH=. python bench/import_time.py
    PYTHONPATH=. python bench/import_time.py --runs 9
    DISPLAY=:99 PYTHONPATH=. python bench/import_time.py --data-home ~/.local/share
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "captum")
TORCH_FREE = ("app.engine.config", "app.run.messages", "app.run.run_state")  # modules that need none of HEAVY
# Each case: the command timed, and a script doing the same in-process (run once, to tell which of
# HEAVY it loads).
HELP = "import main\ntry:\n    main.main({argv!r})\nexcept SystemExit:\n    pass"
CASES = {
    "main.py --help": (["main.py", "--help"], HELP.format(argv=["--help"])),
    "main.py select --help": (["main.py", "select", "--help"], HELP.format(argv=["select", "--help"])),
    "main.py train --help": (["main.py", "train", "--help"], HELP.format(argv=["train", "--help"])),
    **{f"import {name}": (["-c", f"import {name}"], f"import {name}") for name in TORCH_FREE},
}


# The desktop app as `main.py` opens it, its main loop replaced by: say when, and what is loaded.
GUI = f"""
import sys, time
import main
from ui.main_window.window import MainWindow

def shown(window):
    print("shown:%f" % time.time())
    print("loaded:" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
    window.root.destroy()

MainWindow.mainloop = shown
main.main([])
"""


def gui_start(data_home: str) -> tuple[float, str]:
    """(seconds from the process's start to the main window's first update, heavy modules loaded
    by then) of `main.py` opening the desktop app with `data_home` as $XDG_DATA_HOME."""
    start = time.time()
    _, out = run_python(["-c", GUI], XDG_DATA_HOME=data_home)
    shown = float(out.split("shown:", 1)[1].split()[0])
    return shown - start, out.rsplit("loaded:", 1)[1].strip()


def run_python(arguments: list[str], **extra_env: str) -> tuple[float, str]:
    """(seconds, stdout) of a fresh interpreter run with `arguments`, start-up included."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra_env}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *arguments], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout


def heavy_loaded(code: str) -> str:
    """Which of HEAVY `code` leaves in sys.modules, comma-separated ("" for none)."""
    report = f"import sys; print('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    _, out = run_python(["-c", f"{code}\n{report}"])
    return out.rsplit("loaded:", 1)[1].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per case (the median is shown)")
    parser.add_argument("--data-home", help="$XDG_DATA_HOME for the desktop app (default: a fresh, empty one)")
    args = parser.parse_args()
    empty = statistics.median(run_python(["-c", "pass"])[0] for _ in range(args.runs))
    print(f"python start-up alone: {empty:.2f} s (median of {args.runs} runs)")
    print(f"{'case':<70} {'median s':>8} {'min s':>6}  heavy modules loaded")
    for name, (arguments, code) in CASES.items():
        seconds = [run_python(arguments)[0] for _ in range(args.runs)]
        print(f"{name:<70} {statistics.median(seconds):>8.2f} {min(seconds):>6.2f}  {heavy_loaded(code) or '-'}")
    if not os.environ.get("DISPLAY"):
        print("desktop app: not timed (no $DISPLAY)")
        return
    with tempfile.TemporaryDirectory() as fresh:
        home = args.data_home or fresh
        runs = [gui_start(home) for _ in range(args.runs)]
    seconds = [s for s, _ in runs]
    name = f"main.py (desktop app) to its window's first update ({'a last session' if args.data_home else 'no session'})"
    print(f"{name:<70} {statistics.median(seconds):>8.2f} {min(seconds):>6.2f}  {runs[-1][1] or '-'}")


if __name__ == "__main__":
    main()
