"""Make the README's screenshots from the running app: main window, brush window, gallery,
chooser, and the trust warning on a small folder.

    Xvfb :57 -screen 0 1600x1000x24 &        # or any X display
    DISPLAY=:57 .venv/bin/python docs/make_screenshots.py
    DISPLAY=:57 .venv/bin/python docs/make_screenshots.py --trust   # the small-folder warning

It starts the real app (`ui.desktop.build_app`) on the built-in demo data with the default settings
and drives it from inside its own event loop with `after()` callbacks, as a user would: Train;
when the brush window opens, paint red over the corner swatch (the shortcut) of each image with
real mouse events on the canvas, zoom in on the first image's swatch (Ctrl+wheel) and mark it
with a rectangle, shoot the brush window; open the gallery, shoot it, press Done; when the chooser opens,
shoot it and press Commit (or Reject when the round cost validation accuracy, as a careful user
would); once training is back under way, shoot the main window; close it.
Screenshots are taken with ImageMagick's `import -window <id>` into docs/screenshot_*.png.
Sessions go to a temporary folder, so the user's session list is left alone.
With `--trust`, it trains small_cnn on a folder of 32 images (made in a temporary folder) and
shoots the main window with its warning that the numbers cannot be trusted.
With `--walk`, it walks the correction loop on a cut demo (12 training images per digit) and shoots
the whole screen at each stage into docs/screenshot_<stage>_<W>x<H>.png, for the screen size of the
display it runs on (run it under a 1280x720 and a 1600x1000 Xvfb; at 1600x1000 it also shoots the
content preview window alone, docs/screenshot_content_preview.png):

    Xvfb :58 -screen 0 1280x720x24 &  DISPLAY=:58 .venv/bin/python docs/make_screenshots.py --walk
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from app.engine.config import FinetuneConfig  # noqa: E402
from datasets import RED, ensure_demo_data, read_mask  # noqa: E402
from ui.desktop import build_app  # noqa: E402
from ui.helpers.geometry import to_canvas  # noqa: E402
from ui.helpers.window_geometry import GeometryStore  # noqa: E402

DOCS = ROOT / "docs"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def shoot(widget, name: str, out_dir: Path) -> Path:
    """Save the toplevel of `widget` (as on screen) to out_dir/name with ImageMagick."""
    top = widget.winfo_toplevel()
    top.lift()
    top.update_idletasks()
    top.update()
    frame = top.wm_frame()
    window_id = frame if frame and frame != "0x0" else hex(top.winfo_id())
    path = out_dir / name
    subprocess.run(["import", "-window", window_id, str(path)], check=True)
    say(f"saved {path}")
    return path


class Driver:
    """Runs the scenario as a chain of after() callbacks in the app's own thread."""

    def __init__(self, window, demo_root: Path, out_dir: Path, mid_epoch_fraction: float = 0.5):
        self.window = window
        self.demo_root = demo_root
        self.out_dir = out_dir
        self.mid_epoch_fraction = mid_epoch_fraction
        self.step = "train"
        self.error: BaseException | None = None
        self.shot = set()
        self.deadline = time.monotonic() + 1200

    def start(self) -> None:
        self.window.after(500, self.tick)

    def tick(self) -> None:
        try:
            self._tick()
        except BaseException as error:  # noqa: BLE001 -- report, then close the app
            self.error = error
            self.window.on_close()
            return
        if not self.window.closed:
            self.window.after(100, self.tick)

    def _tick(self) -> None:
        w = self.window
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"stuck at step {self.step}")
        if w.last_failure is not None:
            raise RuntimeError(f"training failed: {w.last_failure.message}\n{w.last_failure.details}")
        if self.step == "train":
            say("pressing Train")
            w.train_button.invoke()
            self.step = "wait_brush"
        elif self.step == "wait_brush" and w.brush_window is not None:
            brush = w.brush_window
            if brush.winfo_viewable() and brush.fit is not None:
                self.paint_round(brush)
                brush.gallery_button.invoke()
                self.step = "wait_gallery"
        elif self.step == "wait_gallery" and w.gallery_window is not None:
            gallery = w.gallery_window
            if gallery.winfo_viewable():
                gallery.geometry("+40+40")
                gallery.update()
                time.sleep(0.5)
                gallery.update()
                shoot(gallery, "screenshot_gallery.png", self.out_dir)
                gallery.destroy()
                w.gallery_window = None
                matrix = w.on_reasonability()  # the matrix of this round, with "Paint these"
                if matrix is not None:
                    matrix.geometry("+40+40")
                    matrix.update()
                    time.sleep(0.4)
                    matrix.update()
                    shoot(matrix, "screenshot_reasonability.png", self.out_dir)
                    matrix.destroy()
                    w.reasonability_window = None
                w.brush_window.done_button.invoke()
                say("pressed Done: fine-tuning")
                self.step = "wait_chooser"
        elif self.step == "wait_chooser" and w.chooser_window is not None:
            chooser = w.chooser_window
            chooser.update()
            time.sleep(0.4)
            shoot(chooser, "screenshot_chooser.png", self.out_dir)
            # decide as a careful user would: keep the new weights unless they lost accuracy
            report = chooser.report
            if report.val_accuracy_after >= report.val_accuracy_before - 0.02:
                say("committing the round")
                chooser.commit_button.invoke()
            else:
                say(f"rejecting the round (val accuracy {report.val_accuracy_before:.1%} -> {report.val_accuracy_after:.1%})")
                chooser.reject_button.invoke()
            self.step = "wait_mid_training"
        elif self.step == "wait_mid_training":
            progress = w.progress.eta
            epoch_done_fraction = progress.batch / max(1, progress.batches_per_epoch)
            if (
                "RoundDecided" in w.event_counts
                and w.plots.epochs
                and progress.epoch > w.plots.epochs[-1]
                and epoch_done_fraction >= self.mid_epoch_fraction
            ):
                w.plots.flush()
                w.update()
                time.sleep(0.3)
                shoot(w, "screenshot_main.png", self.out_dir)
                self.step = "close"
        elif self.step == "close":
            say("closing the main window mid-training")
            w.on_close()
            self.step = "closing"

    def paint_round(self, brush) -> None:
        """Red over the swatch of every image (from the demo's truth masks), a green dab on the
        first digit; shoots the first image with its strokes, then presses Done."""
        count = len(brush.items)
        say(f"brush window open with {count} images")
        for index in range(count):
            if index:
                brush.next_button.invoke()
            brush.update()
            relpath = brush.item.relpath
            truth = read_mask(self.demo_root / "truth" / "train" / f"{relpath}", size=brush.item.image.shape[:2]).numpy()
            rows, cols = np.nonzero(truth == RED)
            brush.set_tool("red")
            brush.set_radius(2)
            top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            # a zig-zag over the swatch, as a person would scribble
            points = [(left + 0.5, top + 0.8), (right - 0.5, top + 0.8), (left + 0.5, bottom - 0.8), (right - 0.5, bottom - 0.8)]
            if index:  # the first image gets a rectangle, below
                self.drag(brush, points)
            if index == 0:
                brush.event_generate("<KeyPress-g>")
                greens = np.argwhere(truth < 0)
                middle = greens[len(greens) // 2]
                self.drag(brush, [(middle[1] + 0.5, middle[0] + 0.5 - 2), (middle[1] + 0.5, middle[0] + 0.5 + 2)])
                brush.set_tool("red")
        for _ in range(count - 1):  # back to the first image; leaving an image saves its mask
            brush.prev_button.invoke()
        brush.update()
        # zoom in on the swatch (Ctrl+wheel at it), then mark it with a rectangle
        relpath = brush.item.relpath
        truth = read_mask(self.demo_root / "truth" / "train" / f"{relpath}", size=brush.item.image.shape[:2]).numpy()
        rows, cols = np.nonzero(truth == RED)
        x, y = to_canvas(brush.fit, (cols.min() + cols.max() + 1) / 2, (rows.min() + rows.max() + 1) / 2)
        for _ in range(3):
            brush.canvas.event_generate("<Button-4>", x=int(x), y=int(y), state=0x0004)
            brush.update()
        brush.event_generate("<KeyPress-m>")
        self.drag(brush, [(cols.min() - 0.3, rows.min() - 0.3), (cols.max() + 1.3, rows.max() + 1.3)])
        brush.event_generate("<KeyPress-b>")
        x, y = to_canvas(brush.fit, cols.max() + 4, rows.max() + 4)  # the cursor visible nearby
        brush.canvas.event_generate("<Motion>", x=int(x), y=int(y))
        brush.update()
        time.sleep(0.3)
        shoot(brush, "screenshot_brush.png", self.out_dir)

    @staticmethod
    def drag(brush, image_points) -> None:
        canvas = brush.canvas
        points = [to_canvas(brush.fit, x, y) for x, y in image_points]
        (x0, y0) = points[0]
        canvas.event_generate("<Motion>", x=int(x0), y=int(y0))
        canvas.event_generate("<ButtonPress-1>", x=int(x0), y=int(y0))
        for x, y in points[1:]:
            canvas.event_generate("<B1-Motion>", x=int(x), y=int(y))
        canvas.event_generate("<ButtonRelease-1>", x=int(points[-1][0]), y=int(points[-1][1]))
        canvas.update()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DOCS), help="folder for the PNGs (default: docs/)")
    parser.add_argument("--demo-dir", default=None, help="demo data folder (default: the app's cache folder)")
    parser.add_argument(
        "--max-steps", type=int, default=FinetuneConfig().max_steps, help="fine-tune step cap (lower for a quicker run)"
    )
    parser.add_argument("--trust", action="store_true", help="only the trust warning on a small folder (screenshot_trust.png)")
    parser.add_argument("--walk", action="store_true", help="the correction loop at this screen's size (screenshot_*_WxH.png)")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        parser.error("needs an X display: run under Xvfb, e.g. DISPLAY=:57")
    if shutil.which("import") is None:
        parser.error("needs ImageMagick's `import`")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.trust:
        return trust_screenshot(out_dir)
    if args.walk:
        return walk_screenshots(out_dir)
    demo_root = ensure_demo_data(args.demo_dir) if args.demo_dir else ensure_demo_data()
    sessions = tempfile.mkdtemp(prefix="screenshot-sessions-")
    window = build_app(
        sessions_root=sessions,
        demo_dir=str(demo_root),
        finetune_config=FinetuneConfig(max_steps=args.max_steps),
        geometry_store=GeometryStore(Path(sessions) / "windows.json"),
    )
    window.root.geometry("1400x860+0+0")
    driver = Driver(window, demo_root, out_dir)
    driver.start()
    window.mainloop()
    shutil.rmtree(sessions, ignore_errors=True)
    if driver.error is not None:
        raise driver.error
    say("done")
    return 0


def run_until(widget, predicate, timeout: float = 300.0) -> None:
    """Run the Tk main loop until `predicate()` holds (TimeoutError after `timeout` s)."""
    deadline = time.monotonic() + timeout

    def poll() -> None:
        if predicate() or time.monotonic() > deadline:
            widget.quit()
        else:
            widget.after(50, poll)

    if not predicate():
        widget.after(50, poll)
        widget.mainloop()
    if not predicate():
        raise TimeoutError("the app did not get there in time")


def shoot_screen(root, name: str, out_dir: Path) -> Path:
    """The whole screen (every window as the user sees them) into out_dir/name."""
    root.update()
    time.sleep(0.4)
    root.update()
    path = out_dir / name
    subprocess.run(["import", "-window", "root", str(path)], check=True)
    say(f"saved {path}")
    return path


def cut_demo(full: Path, out: Path, per_class: int = 12, val_per_class: int = 4) -> Path:
    """The demo with a few images per digit (and their truth masks): a walk of about a minute."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(full / "demo.json", out / "demo.json")
    for split, count in (("train", per_class), ("val", val_per_class)):
        for class_dir in sorted((full / split).iterdir()):
            for folder in (split, f"truth/{split}"):
                (out / folder / class_dir.name).mkdir(parents=True, exist_ok=True)
            for image in sorted(class_dir.glob("*.png"))[:count]:
                shutil.copy(image, out / split / class_dir.name / image.name)
                shutil.copy(
                    full / "truth" / split / class_dir.name / image.name, out / "truth" / split / class_dir.name / image.name
                )
    return out


def walk_screenshots(out_dir: Path) -> int:
    """The correction loop at this display's size: brush (with the round's cost), the content
    preview after a "not this" correction, the chooser, the main window after the round."""
    work = Path(tempfile.mkdtemp(prefix="screenshot-walk-"))
    demo = cut_demo(ensure_demo_data(), work / "demo")
    window = build_app(
        sessions_root=str(work / "sessions"),
        demo_dir=str(demo),
        finetune_config=FinetuneConfig(max_steps=20, check_every=5),
        geometry_store=GeometryStore(work / "windows.json"),
    )
    root = window.root
    size = f"{root.winfo_screenwidth()}x{root.winfo_screenheight()}"
    form = window.settings.vars
    for key, value in (("epochs", "4"), ("feedback_every", "1"), ("images_per_round", "4"), ("model", "small_cnn")):
        form[key].set(value)
    root.update()
    try:
        window.train_button.invoke()
        run_until(root, lambda: window.brush_window is not None and window.brush_window.fit is not None)
        brush = window.brush_window
        for index in range(3):
            if index:
                brush.next_button.invoke()
            brush.update()
            truth = read_mask(demo / "truth" / "train" / brush.item.relpath, size=brush.item.image.shape[:2]).numpy()
            rows, cols = np.nonzero(truth == RED)
            brush.event_generate("<KeyPress-m>")
            Driver.drag(brush, [(cols.min() + 0.2, rows.min() + 0.2), (cols.max() + 0.8, rows.max() + 0.8)])
        brush.event_generate("<KeyPress-b>")
        shoot_screen(root, f"screenshot_brush_{size}.png", out_dir)
        panel = brush.propagation
        panel.preview_button.invoke()
        run_until(root, lambda: panel.content_window is not None and panel.content_window.preview is not None)
        preview = panel.content_window
        preview.geometry("+20+20")
        preview.not_this_buttons[preview.items[-1].relpath].invoke()
        first = preview.preview
        preview.rerun_button.invoke()
        run_until(root, lambda: preview.busy is None and preview.preview is not first)
        shoot_screen(root, f"screenshot_content_preview_{size}.png", out_dir)
        if size == "1600x1000":  # the README's picture of the preview window alone
            shoot(preview, "screenshot_content_preview.png", out_dir)
        preview.apply_button.invoke()
        run_until(root, lambda: "PropagationApplied" in window.event_counts)
        brush.done_button.invoke()
        run_until(root, lambda: window.chooser_window is not None)
        shoot_screen(root, f"screenshot_chooser_{size}.png", out_dir)
        chooser = window.chooser_window
        chooser.commit_button.invoke()
        if chooser.confirm is not None:
            chooser.confirm.yes_button.invoke()
        run_until(root, lambda: "RoundDecided" in window.event_counts)
        batches = window.event_counts["BatchFinished"]
        run_until(root, lambda: window.event_counts["BatchFinished"] >= batches + 2)
        window.plots.flush()
        shoot_screen(root, f"screenshot_main_{size}.png", out_dir)
    finally:
        window.on_close()
        run_until(root, lambda: window.closed, 120)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def trust_screenshot(out_dir: Path) -> int:
    """small_cnn on 32 images of two shapes: the banner says the numbers mean nothing."""
    from PIL import Image, ImageDraw

    work = Path(tempfile.mkdtemp(prefix="screenshot-small-"))
    rng = np.random.default_rng(0)
    for name in ("circles", "squares"):
        (work / "data" / name).mkdir(parents=True)
        for i in range(16):
            picture = Image.new("RGB", (300, 200), tuple(int(v) for v in rng.integers(0, 255, 3)))
            draw = ImageDraw.Draw(picture)
            x, y = int(rng.integers(20, 200)), int(rng.integers(20, 100))
            shape = draw.ellipse if name == "circles" else draw.rectangle
            shape((x, y, x + 70, y + 70), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
            picture.save(work / "data" / name / f"{i:02d}.png")
    window = build_app(sessions_root=str(work / "sessions"), geometry_store=GeometryStore(work / "windows.json"))
    window.root.geometry("1400x860+0+0")
    form = window.settings.vars
    form["train_dir"].set(str(work / "data"))
    form["epochs"].set("3")
    form["feedback_every"].set("0")
    state = {"error": None}

    def tick() -> None:
        if window.finished is not None or window.last_failure is not None:
            window.plots.flush()
            window.update()
            time.sleep(0.3)
            shoot(window, "screenshot_trust.png", out_dir)
            window.on_close()
            return
        window.after(200, tick)

    def start() -> None:
        say("training small_cnn on 32 images")
        window.train_button.invoke()
        window.after(200, tick)

    window.after(500, start)
    window.mainloop()
    shutil.rmtree(work, ignore_errors=True)
    return 0 if state["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
