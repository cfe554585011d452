"""A real session on the demo data, its HTML report, and the report's screenshot for the README.

    PYTHONPATH=. python bench/report_demo.py --work /tmp/report-demo [--screenshot docs/screenshot_report.png]

Trains small_cnn on the corner demo with a feedback round after epochs 1 and 2, answered by the
simulated user of the effectiveness benchmark (paints the swatch red and the digit green,
propagates by content, commits), so the session has everything a report shows: history,
propagated masks, before/after panels, a checkpoint. Then writes `<work>/report.html` with
`app.report.write_report` and, with --screenshot, renders it in headless Chromium.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simulated_user import ScriptedUser, SimulatedUser

from app.engine import FinetuneConfig, TrainConfig
from app.report import write_report
from app.run import Session, Trainer
from app.run import messages as msg
from app.run.driver import drive_trainer
from datasets import demo as demo_data

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2000) -> None:
    """Render `html` in headless Chromium into `png` (a fresh profile, no network)."""
    browser = chromium()
    if browser is None:
        raise SystemExit("no chromium: apt-get install chromium (make system-deps)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={png.resolve()}",
                f"--window-size={width},{height}",
                html.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="folder for the demo data and the session (created)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--screenshot", help="PNG to write the report's screenshot to")
    args = parser.parse_args()
    work = Path(args.work)
    demo = (
        demo_data.DemoInfo.from_dir(work / "demo")
        if (work / "demo" / "demo.json").is_file()
        else demo_data.make_demo_data(work / "demo")
    )
    folder = work / "session"
    if folder.exists():
        shutil.rmtree(folder)
    config = TrainConfig(epochs=args.epochs, feedback_every=1, images_per_round=6, selection="unreasonable", seed=0, device="cpu")
    finetune = FinetuneConfig()
    session = Session.create(folder, demo.train_dir, demo.val_dir, config, finetune, test_dir=demo.test_dir)
    user = ScriptedUser(SimulatedUser(demo.truth_dir("train")), budget=12, scope="content")
    started = time.monotonic()
    paths = session.run_paths()
    _, outcome = drive_trainer(lambda emit: Trainer(config, finetune, paths, emit=emit, session=session), user)
    if not isinstance(outcome, msg.TrainingFinished):
        raise SystemExit(f"training did not finish: {outcome}")
    print(f"session {folder}: {len(session.history())} rounds in {time.monotonic() - started:.0f} s", file=sys.stderr)
    report = write_report(folder, work / "report.html")
    print(f"report {report} ({report.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    if args.screenshot:
        screenshot(report, Path(args.screenshot))
        print(f"screenshot {args.screenshot}", file=sys.stderr)


if __name__ == "__main__":
    main()
