"""A small shortcut data set and a hand-built model that uses the shortcut on the images that
carry it: shared by the discovery and selection tests.

The data: 16 x 16 images of two classes; class "b" has a bright grey square in the centre (the
object), class "a" a greenish one; a third of the "b" images also carry a small red patch
somewhere in the border (the shortcut). The model is built by hand: a 1 x 1 convolution with a
red detector (R - G - B, thresholded), a brightness detector and a green detector, averaged, and
a head whose class-b logit weighs the red detector 40 times the brightness. So on a patch image
the model decides by the patch (hiding it changes the prediction), elsewhere by the spread-out
centre.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from datasets import ImageFolderData

SIDE = 16


def shortcut_model() -> nn.Module:
    conv = nn.Conv2d(3, 3, kernel_size=1)
    head = nn.Linear(3, 2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, 0, 0] = torch.tensor([4.0, -4.0, -4.0])  # red: fires where R >> G, B
        conv.bias[0] = -1.0
        conv.weight[1, :, 0, 0] = torch.tensor([1.0, 1.0, 1.0]) / 3  # brightness
        conv.bias[1] = -0.3
        conv.weight[2, :, 0, 0] = torch.tensor([-1.0, 2.0, -1.0])  # green: G above R and B
        conv.bias[2] = -0.2
        head.weight.copy_(torch.tensor([[-40.0, -4.0, 8.0], [40.0, 4.0, -8.0]]))
        head.bias.copy_(torch.tensor([1.0, -1.0]))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


def make_shortcut_data(tmp_path):
    """(dataset, set of relpaths that carry the red patch)."""
    rng = np.random.default_rng(0)
    carrying = set()
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(24):
            pixels = rng.integers(0, 40, (SIDE, SIDE, 3)).astype(np.uint8)
            if label == "a":
                pixels[4:12, 4:12] = rng.integers(200, 256, (8, 8, 3)) * np.array([0.5, 1.0, 0.5])
            if label == "b":
                pixels[4:12, 4:12] = rng.integers(200, 256, (8, 8, 3))
                if i % 3 == 0:
                    row, col = [(0, 0), (0, 13), (13, 0), (13, 13), (6, 0), (0, 6)][i // 3 % 6]
                    pixels[row : row + 3, col : col + 3] = (255, 0, 0)
                    carrying.add(f"{label}/{i:02d}.png")
            Image.fromarray(pixels).save(tmp_path / label / f"{i:02d}.png")
    return ImageFolderData(tmp_path, SIDE, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), carrying
