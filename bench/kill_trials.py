"""kill -9 during train, fine-tune, propagate and history appends, and stop signals during
train: what is lost?

Each trial starts the real command line (`main.py train --masks ...`, `finetune`, `propagate`)
or a loop of `Session.append_history` in a child process, kills it with SIGKILL at a seeded
random moment, and checks what was left:

- every mask decodes, and every hand-painted mask is byte-for-byte the one painted;
- the checkpoint left behind (if any) loads with `weights_only` and its weights are finite;
  an input checkpoint is unchanged;
- `history()` returns every record whose line was complete on disk, and the next append after
  the kill is read back (a torn line used to swallow it);
- temp files of the killed writer are counted right after the kill, and again after what the
  next writer does first (`remove_stale_temp_files`, as `--out` preparation and
  `Session.open` call it);
- `stop`: `train` into a folder holding a complete model gets Ctrl+C, SIGTERM or SIGHUP at a
  random moment, half the time a second Ctrl+C after it (issue 22): it must exit with
  128 + the first signal, leave the complete model unchanged, its partial checkpoint loading
  beside it, and metrics.json written.

    python bench/kill_trials.py                      # 30 trials, about 4 minutes on 2 busy cores
    python bench/kill_trials.py --trials 2 2 2 2 2   # train, finetune, propagate, history, stop
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from app.cli.main import main as cli  # noqa: E402
from app.engine.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from app.engine.finite_guard import weights_problem  # noqa: E402
from datasets import MaskStore  # noqa: E402
from datasets.atomic_files import remove_stale_temp_files  # noqa: E402
from datasets.masks import read_mask_array  # noqa: E402

KINDS = ("train", "finetune", "propagate", "history", "stop")
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@dataclasses.dataclass
class Trial:
    kind: str
    killed_after: float  # seconds after the child was ready
    exited_before_kill: bool = False
    masks_total: int = 0
    masks_lost_or_corrupt: int = 0
    checkpoint: str = "absent"  # absent | loads | BROKEN
    input_checkpoint_changed: bool = False
    history_complete_lines: int = 0
    history_torn_last_line: bool = False  # the kill cut a record in half
    history_records_lost: int = 0
    next_append_lost: bool = False
    temp_files_after_kill: int = 0
    temp_files_after_cleanup: int = 0
    stop_signals: str = ""  # "stop": the signals sent, e.g. "SIGTERM" or "SIGINT+SIGINT"
    stop_failed: str = ""  # "stop": what went wrong ("" when nothing)


# ------------------------------------------------------------------------------ fixtures
def make_world(folder: Path, seed: int = 0) -> Dict[str, Path]:
    """A 3-class folder of 48x48 images with a coloured corner tag, masks on 12 images, a
    1-epoch checkpoint."""
    rng = np.random.default_rng(seed)
    data = folder / "data"
    for k, name in enumerate(("circle", "square", "cross")):
        (data / name).mkdir(parents=True)
        for i in range(40):
            pixels = rng.integers(0, 80, (48, 48, 3), dtype=np.uint8)
            pixels[8 + 8 * k : 20 + 8 * k, 10:30] = 220
            pixels[:6, :6] = (255, 40 * k, 0)
            Image.fromarray(pixels).save(data / name / f"{name}_{i:03d}.png")
    store = MaskStore(folder / "masks")
    for name in ("circle", "square", "cross"):
        for i in range(4):
            mask = np.zeros((48, 48), np.int8)
            mask[:8, :8] = 1
            mask[20:40, 10:30] = -1
            store.save(f"{name}/{name}_{i:03d}.png", mask)
    quiet = open(os.devnull, "w")
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = quiet
    try:
        code = cli(
            [
                "train",
                "--data",
                str(data),
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--guidance",
                "none",
                "--out",
                str(folder / "base"),
            ]
        )
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        quiet.close()
    if code != 0:
        raise SystemExit("could not train the base checkpoint")
    return {"data": data, "masks": folder / "masks", "checkpoint": folder / "base" / "model.pt"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mask_digests(masks: Path) -> Dict[str, str]:
    return {p.relative_to(masks).as_posix(): digest(p) for p in masks.rglob("*.png") if not p.name.startswith(".")}


def count_temp_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob(".*.tmp")) if folder.is_dir() else 0


# ------------------------------------------------------------------------------- one trial
def start(argv: List[str]) -> subprocess.Popen:
    return subprocess.Popen(
        argv, cwd=ROOT, env=CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def wait_ready(proc: subprocess.Popen, marker: Optional[str], limit: float = 120.0) -> None:
    """Block until the child printed `marker` on stderr (its data is loaded), or exits."""
    if marker is None:
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            return
        if marker in line:
            return


def wait_until(proc: subprocess.Popen, condition, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None and not condition():
        time.sleep(0.02)


def kill_at_random(proc: subprocess.Popen, rng: random.Random, low: float, high: float) -> tuple:
    delay = rng.uniform(low, high)
    time.sleep(delay)
    exited = proc.poll() is not None
    if not exited:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return delay, exited


def check_checkpoint(path: Path) -> str:
    if not path.exists():
        return "absent"
    try:
        model = model_from_checkpoint(load_checkpoint(path))
    except Exception:  # noqa: BLE001 -- anything that does not load is the failure counted
        return "BROKEN"
    return "loads" if weights_problem(model) is None else "BROKEN"


def trial(kind: str, world: Dict[str, Path], work: Path, rng: random.Random) -> Trial:
    python = sys.executable
    main_py = str(ROOT / "main.py")
    hand_painted = mask_digests(world["masks"])
    if kind == "train":
        out = work / "run"
        proc = start(
            [
                python,
                main_py,
                "train",
                "--data",
                str(world["data"]),
                "--masks",
                str(world["masks"]),
                "--epochs",
                "200",
                "--batch-size",
                "16",
                "--out",
                str(out),
            ]
        )
        wait_ready(proc, "device:")
        delay, exited = kill_at_random(proc, rng, 0.0, 4.0)
        result = Trial(kind, delay, exited)
        result.checkpoint = check_checkpoint(out / "model.pt")
        masks_dir, temp_root = world["masks"], out
    elif kind == "finetune":
        out = work / "ft"
        before = digest(world["checkpoint"])
        proc = start(
            [
                python,
                main_py,
                "finetune",
                "--checkpoint",
                str(world["checkpoint"]),
                "--data",
                str(world["data"]),
                "--masks",
                str(world["masks"]),
                "--out",
                str(out),
                "--max-steps",
                "100000",
                "--val-loss-rise",
                "1e9",
                "--lr",
                "1e-5",
            ]
        )
        wait_ready(proc, "step ")
        delay, exited = kill_at_random(proc, rng, 0.0, 3.0)
        result = Trial(kind, delay, exited)
        result.checkpoint = check_checkpoint(out / "model.pt")
        result.input_checkpoint_changed = digest(world["checkpoint"]) != before
        masks_dir, temp_root = world["masks"], out
    elif kind == "propagate":
        masks_dir = work / "masks"
        shutil.copytree(world["masks"], masks_dir)
        proc = start(
            [
                python,
                main_py,
                "propagate",
                "--checkpoint",
                str(world["checkpoint"]),
                "--data",
                str(world["data"]),
                "--masks",
                str(masks_dir),
                "--scope",
                "all",
                "--out",
                str(masks_dir),
            ]
        )
        painted = len(hand_painted)
        wait_until(proc, lambda: sum(1 for _ in masks_dir.rglob("*.png")) > painted)  # writing has begun
        delay, exited = kill_at_random(proc, rng, 0.0, 0.8)
        result = Trial(kind, delay, exited)
        temp_root = masks_dir
    elif kind == "stop":
        result, masks_dir, temp_root = stop_trial(world, work, rng, python, main_py)
    else:  # history
        session_dir = work / "session"
        from app.engine.config import TrainConfig
        from app.run.session import Session

        Session.create(session_dir, world["data"], None, TrainConfig()).close()  # the child opens (and locks) it
        code = (
            "import sys\n"
            "from app.run.session import Session\n"
            "s = Session.open(sys.argv[1]); print('ready', file=sys.stderr, flush=True)\n"
            "i = 0\n"
            "while True:\n"
            "    s.append_history({'round': i, 'report': {'notes': 'x' * 3000, 'i': i}}); i += 1\n"
        )
        proc = start([python, "-c", code, str(session_dir)])
        wait_ready(proc, "ready")
        delay, exited = kill_at_random(proc, rng, 0.05, 1.0)
        result = Trial(kind, delay, exited)
        session = Session.open(session_dir)
        raw = session.history_path.read_bytes()
        complete = [line for line in raw.split(b"\n")[:-1] if line.strip()]
        result.history_complete_lines = len(complete)
        result.history_torn_last_line = bool(raw) and not raw.endswith(b"\n")
        rounds = [r["round"] for r in session.history()]
        result.history_records_lost = sum(1 for i in range(len(complete)) if i not in rounds)
        session.append_history({"round": "after-kill"})
        result.next_append_lost = session.history()[-1].get("round") != "after-kill"
        masks_dir, temp_root = world["masks"], session_dir

    after = mask_digests(masks_dir)
    result.masks_total = len(after)
    lost = 0
    for relpath, painted in hand_painted.items():
        if after.get(relpath) != painted:
            lost += 1
    for relpath in after:
        try:
            read_mask_array(masks_dir / relpath)
        except Exception:  # noqa: BLE001 -- an undecodable mask counts as lost
            lost += 1
    result.masks_lost_or_corrupt = lost
    result.temp_files_after_kill = count_temp_files(temp_root)
    remove_stale_temp_files(temp_root, recursive=True)
    result.temp_files_after_cleanup = count_temp_files(temp_root)
    return result


def stop_trial(world: Dict[str, Path], work: Path, rng: random.Random, python: str, main_py: str) -> tuple:
    """`train` into a folder with a complete model, stopped by a random stop signal (and half
    the time a second Ctrl+C): (Trial, masks folder, temp root)."""
    out = work / "run"
    out.mkdir()
    shutil.copyfile(world["checkpoint"], out / "model.pt")
    complete = digest(out / "model.pt")
    argv = [python, main_py, "train", "--data", str(world["data"]), "--masks", str(world["masks"])]
    proc = start([*argv, "--epochs", "200", "--batch-size", "16", "--out", str(out)])
    wait_ready(proc, "device:")
    first = rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
    second = rng.random() < 0.5
    delay = rng.uniform(0.0, 3.0)
    time.sleep(delay)
    result = Trial("stop", delay, proc.poll() is not None)
    sent = []
    if not result.exited_before_kill:
        os.kill(proc.pid, first)
        sent.append(first.name)
        if second:
            time.sleep(rng.uniform(0.1, 3.0))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)
                sent.append("SIGINT")
    proc.communicate(timeout=600)
    result.stop_signals = "+".join(sent)
    problems = []
    if sent and proc.returncode != 128 + first:
        problems.append(f"exit status {proc.returncode}, not {128 + first}")
    if digest(out / "model.pt") != complete:  # only by a complete epoch of this run
        try:
            if load_checkpoint(out / "model.pt").metrics.get("partial_epoch"):
                problems.append("a partial checkpoint replaced the complete model.pt")
        except Exception as error:  # noqa: BLE001 -- anything that does not load is the failure counted
            problems.append(f"model.pt does not load: {error}")
    partial = out / "model.partial.pt"
    result.checkpoint = check_checkpoint(partial if partial.exists() else out / "model.pt")
    if sent and not partial.exists():
        problems.append("no partial checkpoint beside model.pt")
    if not (out / "metrics.json").is_file():
        problems.append("no metrics.json")
    result.stop_failed = "; ".join(problems)
    return result, world["masks"], out


def run_trials(counts: Dict[str, int], seed: int = 0, folder: Optional[Path] = None) -> List[Trial]:
    rng = random.Random(seed)
    own = folder is None
    folder = Path(tempfile.mkdtemp(prefix="kill-trials-")) if own else folder
    try:
        world = make_world(folder / "world", seed)
        results = []
        number = 0
        for kind in KINDS:
            for _ in range(counts.get(kind, 0)):
                number += 1
                work = folder / f"trial{number:03d}"
                work.mkdir()
                results.append(trial(kind, world, work, rng))
        return results
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def summary(results: List[Trial]) -> Dict[str, Dict[str, int]]:
    table: Dict[str, Dict[str, int]] = {}
    for r in results:
        row = table.setdefault(
            r.kind,
            {
                "trials": 0,
                "killed_mid_run": 0,
                "masks_lost_or_corrupt": 0,
                "checkpoints_broken": 0,
                "checkpoints_loaded": 0,
                "input_checkpoint_changed": 0,
                "history_records_lost": 0,
                "next_append_lost": 0,
                "temp_files_after_kill": 0,
                "temp_files_after_cleanup": 0,
            },
        )
        row["trials"] += 1
        row["killed_mid_run"] += int(not r.exited_before_kill)
        row["masks_lost_or_corrupt"] += r.masks_lost_or_corrupt
        row["checkpoints_broken"] += int(r.checkpoint == "BROKEN")
        row["checkpoints_loaded"] += int(r.checkpoint == "loads")
        row["input_checkpoint_changed"] += int(r.input_checkpoint_changed)
        row["history_torn_last_lines"] = row.get("history_torn_last_lines", 0) + int(r.history_torn_last_line)
        row["history_records_lost"] += r.history_records_lost
        row["next_append_lost"] += int(r.next_append_lost)
        row["temp_files_after_kill"] += r.temp_files_after_kill
        row["temp_files_after_cleanup"] += r.temp_files_after_cleanup
        if r.kind == "stop":
            row["stops_failed"] = row.get("stops_failed", 0) + int(bool(r.stop_failed))
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--trials",
        type=int,
        nargs=5,
        default=[8, 5, 6, 5, 6],
        metavar=("TRAIN", "FINETUNE", "PROPAGATE", "HISTORY", "STOP"),
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    results = run_trials(dict(zip(KINDS, args.trials)), args.seed)
    for r in results:
        print(json.dumps(dataclasses.asdict(r)))
    print(
        json.dumps(
            {"summary": summary(results), "trials": len(results), "seconds": round(time.monotonic() - started, 1)}, indent=2
        )
    )
    broken = sum(
        r.masks_lost_or_corrupt
        + r.history_records_lost
        + int(r.next_append_lost)
        + int(r.checkpoint == "BROKEN")
        + int(r.input_checkpoint_changed)
        + r.temp_files_after_cleanup
        + int(bool(r.stop_failed))
        for r in results
    )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
