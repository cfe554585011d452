"""A bare brush window on one 16 x 16 image, for the kill -9 test (test_brush_window.py).

Run as `python tests/brush_crash_app.py MASKS_DIR`; prints one JSON line with the canvas'
screen origin and the scale (screen pixels per image pixel), then runs the Tk main loop
until it is killed.
"""

import json
import sys
import tkinter as tk  # noqa: E402

import numpy as np  # noqa: E402

from app.run.messages import FeedbackItem  # noqa: E402
from datasets.masks import MaskStore  # noqa: E402
from ui.brush.window import BrushWindow  # noqa: E402

root = tk.Tk()
root.geometry("40x40+1500+900")  # a withdrawn master would hide its transient window
item = FeedbackItem(
    relpath="a/one.png",
    image=np.full((16, 16, 3), 128, np.uint8),
    saliency=np.zeros((8, 8), np.float32),
    true_label="a",
    predicted_label="a",
    confidence=0.9,
)
window = BrushWindow(root, [item], MaskStore(sys.argv[1]), canvas_size=320)
window.geometry("+0+0")
window.set_radius(1)
window.update()
window.lift()
window.update()
fit = window.fit
print(
    json.dumps(
        {"scale": fit.scale, "origin": [window.canvas.winfo_rootx() + fit.offset_x, window.canvas.winfo_rooty() + fit.offset_y]}
    ),
    flush=True,
)
root.mainloop()
