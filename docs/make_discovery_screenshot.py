"""The README's screenshot of the discovery window, on a plain model of a shortcut zoo draw.

    Xvfb :58 -screen 0 1600x1000x24 &
    DISPLAY=:58 PYTHONPATH=.:bench .venv/bin/python docs/make_discovery_screenshot.py --draw 10

Trains (once, kept under `--work`) the plain small_cnn of zoo draw `--draw` with 30 % of the
images carrying the shortcut (`bench/zoo_models.py`), opens `ui.windows.discovery_window` on its
training folder, waits for the groups and shoots the window with ImageMagick's `import` into
docs/screenshot_discovery.png. Draw 10's shortcut is a 2-pixel frame: no heatmap shows it, the
group's "unlike its class" picture does.
"""

from __future__ import annotations

import argparse
import subprocess
import tkinter as tk
from pathlib import Path

from zoo_models import plain_zoo_model

from ui.windows.discovery_window import DiscoveryWindow

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draw", type=int, default=10)
    parser.add_argument("--work", default="/tmp/saliency-bench/zoo")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot_discovery.png"))
    args = parser.parse_args()
    subject = plain_zoo_model(args.draw, (0.3, 0.3), Path(args.work))
    root = tk.Tk()
    root.geometry("1x1+1500+950")
    window = DiscoveryWindow(root, str(subject.checkpoint), str(subject.data / "train"))
    window.geometry("1000x900+20+20")

    def shoot() -> None:
        if window.result is None and window.error is None:
            root.after(300, shoot)
            return
        root.update()
        root.after(500)
        root.update()
        subprocess.run(["import", "-window", window.wm_frame(), args.out], check=True)
        root.quit()

    root.after(300, shoot)
    root.mainloop()
    print(args.out, window.error or "")


if __name__ == "__main__":
    main()
