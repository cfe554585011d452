"""The report's pictures as PNG bytes: training curves, paint and heatmap panels.

Drawn with matplotlib's Agg backend (no display needed) and PIL; every function returns PNG
bytes that `html_report` inlines as data: URIs.
"""

from __future__ import annotations

import io
import math
from typing import Any, Dict, List, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # before pyplot: the report is drawn without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

PAINT_ALPHA = 0.45  # how strongly red/green paint covers the image
HEAT_ALPHA = 0.55  # how strongly the heatmap covers the image
PANEL_SIDE = 120  # shown size (px) of the panels in the report


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _figure_png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def painted(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image (H x W x 3 uint8) with red (+1) and green (-1) of `mask` blended over it."""
    out = image.astype(np.float32)
    for value, colour in ((1, (255, 0, 0)), (-1, (0, 200, 0))):
        where = mask == value
        out[where] = (1 - PAINT_ALPHA) * out[where] + PAINT_ALPHA * np.asarray(colour, np.float32)
    return out.clip(0, 255).astype(np.uint8)


def heatmap(image: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """The image with `saliency` (h x w in [0, 1], any size) as a colour map blended over it."""
    height, width = image.shape[:2]
    values = np.nan_to_num(np.asarray(saliency, dtype=np.float32))
    scaled = Image.fromarray((values.clip(0, 1) * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BILINEAR)
    colours = plt.get_cmap("inferno")(np.asarray(scaled) / 255.0)[..., :3] * 255
    return ((1 - HEAT_ALPHA) * image.astype(np.float32) + HEAT_ALPHA * colours).clip(0, 255).astype(np.uint8)


def curves(history: Sequence[Dict[str, Any]], rounds: Sequence[Any]) -> bytes:
    """Losses and accuracies per epoch (every numeric *loss / *accuracy key of the epoch
    records), with each round's epoch marked: solid green committed, dashed grey otherwise."""
    epochs = [record.get("epoch", i + 1) for i, record in enumerate(history)]
    keys = sorted({k for record in history for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for axis, ending, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for key in [k for k in keys if k.endswith(ending)]:
            values = [record.get(key) for record in history]
            points = [(e, v) for e, v in zip(epochs, values) if isinstance(v, (int, float)) and math.isfinite(v)]
            if points:
                xs, ys = zip(*points)
                ys = [100 * y for y in ys] if ending == "accuracy" else ys
                axis.plot(xs, ys, marker="o", markersize=3, label=key.replace("_", " "))
        for item in rounds:
            committed = item.decision == "commit"
            axis.axvline(item.epoch, color="tab:green" if committed else "0.6", linestyle="-" if committed else "--", linewidth=1)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.set_title(title + (" (%)" if ending == "accuracy" else ""))
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    return _figure_png(figure)


def panel_images(panel: Dict[str, Any]) -> List[bytes]:
    """PNGs of one image of a round: painted, heatmap before, heatmap after."""
    image = np.asarray(panel["image"], dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return [
        png_bytes(painted(image, np.asarray(panel["mask"]))),
        png_bytes(heatmap(image, panel["saliency_before"])),
        png_bytes(heatmap(image, panel["saliency_after"])),
    ]
