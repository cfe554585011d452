"""The shortcut zoo: shortcut data sets drawn at random from a family, so a method cannot be
tuned to one demo.

A seed picks one `ZooDraw`: the kind of shortcut (`KINDS`: a coloured patch, a grey glyph, a
text tag, a striped texture, a coloured frame, a second solid object), where it sits (`fixed`
for the whole set, `moving` anywhere in the border, or `tied` beside an object that itself
moves), its size, opacity, the share of images that carry it and how hard the object is (a
faint, noisy handwritten digit from scikit-learn's bundled 8x8 digits; nothing is downloaded).
In `train/` and `val/` the shortcut's class is the image's label (on the share that carries it);
in `test/` every image carries a shortcut of a random class, so a model that uses it fails there.
`oracle/train|val` hold the same images without any shortcut (what a shortcut-free model could
reach). The layout is the demo's (`datasets.demo`), so every tool that reads a demo reads a
zoo draw:

    out/train|val|test/<digit>/<name>.png      RGB images, side `size`
    out/truth/<split>/<digit>/<name>.png       red over the shortcut's pixels, green over the digit
    out/oracle/train|val/<digit>/<name>.png    the same images without the shortcut
    out/demo.json                              the draw's parameters, seed and counts

The same seed gives byte-identical files. Object and shortcut never overlap.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .demo import DEMO_VERSION, GLYPHS, SPLITS, _split_assignment
from .errors import DatasetError
from .masks import GREEN, RED, _png_text, mask_to_image

KINDS = ("patch", "glyph", "text", "texture", "frame", "object")
PLACEMENTS = ("fixed", "moving", "tied")
# Ten clearly different colours (RGB), one per class for the kinds whose colour tells the class.
PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190),
)  # fmt: skip
_INK_THRESHOLD = 64  # upscaled ink (0..255) from which a pixel counts as the digit's stroke


@dataclass(frozen=True)
class ZooDraw:
    """One shortcut data set of the family; `draw_zoo(seed)` picks the values."""

    seed: int  # seeds the draw and the images
    size: int  # image side in pixels (32..128)
    kind: str  # one of KINDS
    placement: str  # fixed | moving | tied (a frame is always fixed)
    scale: float  # shortcut side as a share of the image side (0.12..0.25; a frame's thickness is a third of it)
    opacity: float  # alpha of the shortcut over the background (0.6..1)
    share: float  # share of train/val images that carry the shortcut (0..1); test: all
    digit_contrast: float  # full ink drawn at this share of white (0.4..0.7: faint)
    noise_sigma: float  # Gaussian noise on every pixel, grey levels (20..35)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DatasetError(f"Unknown zoo shortcut kind {self.kind!r}; choose one of {', '.join(KINDS)}.")
        if self.placement not in PLACEMENTS:
            raise DatasetError(f"Unknown zoo placement {self.placement!r}; choose one of {', '.join(PLACEMENTS)}.")
        if not 24 <= self.size <= 256:
            raise DatasetError(f"A zoo image side must be 24..256 pixels, got {self.size}.")
        if not (0.0 <= self.share <= 1.0 and 0.0 < self.opacity <= 1.0 and 0.05 <= self.scale <= 0.4):
            raise DatasetError("share must be in [0, 1], opacity in (0, 1], scale in [0.05, 0.4].")

    def describe(self) -> str:
        """One line, e.g. 'patch moving 32px side 0.19 opacity 0.85 share 0.9 contrast 0.5 noise 30'."""
        return (
            f"{self.kind} {self.placement} {self.size}px side {self.scale:.2f} opacity {self.opacity:.2f} "
            f"share {self.share:.2f} contrast {self.digit_contrast:.2f} noise {self.noise_sigma:.0f}"
        )


def draw_zoo(
    seed: int,
    sizes: Sequence[int] = (32, 48),
    kinds: Sequence[str] = KINDS,
    placements: Sequence[str] = PLACEMENTS,
    share: tuple[float, float] = (0.8, 1.0),
) -> ZooDraw:
    """The zoo draw of `seed`: the kind stratified (`kinds[seed % len(kinds)]`, so any run of
    consecutive seeds covers every kind evenly), every other parameter uniform over its range
    (the ranges in `ZooDraw`).

    `sizes`, `kinds`, `placements` and `share` (low, high) narrow the family, e.g. `share=(0.3,
    0.3)` for draws where only 30 % of the images carry the shortcut.
    """
    rng = np.random.default_rng([seed, 19])
    kind = str(kinds[seed % len(kinds)])
    placement = "fixed" if kind == "frame" else str(rng.choice(list(placements)))
    return ZooDraw(
        seed=int(seed),
        size=int(rng.choice(list(sizes))),
        kind=kind,
        placement=placement,
        scale=round(float(rng.uniform(0.12, 0.25)), 3),
        opacity=round(float(rng.uniform(0.6, 1.0)), 3),
        share=round(float(rng.uniform(*share)), 3),
        digit_contrast=round(float(rng.uniform(0.4, 0.7)), 3),
        noise_sigma=round(float(rng.uniform(20.0, 35.0)), 1),
    )


# ------------------------------------------------------------------ rendering
def _digit_layer(digit8: np.ndarray, side: int) -> np.ndarray:
    """Ink 0..255 float, side x side, of an 8x8 digit (0..16) upscaled bilinearly."""
    ink = np.rint(np.asarray(digit8, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    return np.asarray(Image.fromarray(ink, mode="L").resize((side, side), Image.Resampling.BILINEAR), dtype=np.float64)


def _grow(region: np.ndarray) -> np.ndarray:
    """bool HxW grown by one pixel in all 8 directions."""
    padded = np.pad(region, 1)
    height, width = region.shape
    grown = np.zeros_like(region)
    for dy in range(3):
        for dx in range(3):
            grown |= padded[dy : dy + height, dx : dx + width]
    return grown


def _text_stamp(label: int, side: int) -> np.ndarray:
    """bool side x side: a two-letter tag of the class (AA, BB, ...) in PIL's built-in font, scaled."""
    font = ImageFont.load_default()
    canvas = Image.new("L", (24, 12), 0)
    ImageDraw.Draw(canvas).text((0, 0), chr(65 + label) * 2, fill=255, font=font)
    box = canvas.getbbox() or (0, 0, 24, 12)
    tag = canvas.crop(box)
    width = max(3, side)
    height = max(2, round(side * tag.height / max(tag.width, 1)))
    return np.asarray(tag.resize((width, height), Image.Resampling.NEAREST)) >= 128


def _texture_stamp(label: int, side: int, phase: float) -> np.ndarray:
    """float 0..1 side x side: stripes whose angle tells the class (18 degrees apart)."""
    angle = np.deg2rad(18.0 * label)
    rows, cols = np.mgrid[0:side, 0:side]
    wave = np.cos(2 * np.pi * (np.cos(angle) * cols + np.sin(angle) * rows) / 4.0 + phase)
    return (wave > 0).astype(np.float64)


def _object_stamp(label: int, side: int) -> np.ndarray:
    """bool side x side: a solid shape per class (disc, square, triangle, ...)."""
    image = Image.new("L", (side * 4, side * 4), 0)
    draw = ImageDraw.Draw(image)
    s = side * 4 - 1
    shapes = (
        lambda: draw.ellipse((0, 0, s, s), fill=255),
        lambda: draw.rectangle((0, 0, s, s), fill=255),
        lambda: draw.polygon([(s / 2, 0), (s, s), (0, s)], fill=255),
        lambda: draw.polygon([(s / 2, 0), (s, s / 2), (s / 2, s), (0, s / 2)], fill=255),
        lambda: draw.rectangle((0, s * 0.35, s, s * 0.65), fill=255),
        lambda: draw.rectangle((s * 0.35, 0, s * 0.65, s), fill=255),
        lambda: draw.pieslice((0, 0, s, s), 0, 180, fill=255),
        lambda: (draw.rectangle((0, s * 0.35, s, s * 0.65), fill=255), draw.rectangle((s * 0.35, 0, s * 0.65, s), fill=255)),
        lambda: draw.ellipse((0, 0, s, s), outline=255, width=max(1, side)),
        lambda: draw.polygon([(0, 0), (s, 0), (0, s)], fill=255),
    )
    shapes[label]()
    return np.asarray(image.resize((side, side), Image.Resampling.BOX)) >= 128


def _glyph_stamp(label: int, side: int) -> np.ndarray:
    """bool side x side: the demo's 7x7 glyph of the class, scaled (nearest neighbour)."""
    glyph = Image.fromarray(GLYPHS[label].astype(np.uint8) * 255, mode="L")
    return np.asarray(glyph.resize((side, side), Image.Resampling.NEAREST)) >= 128


class _Renderer:
    """Draws the images of one ZooDraw; all randomness comes from the generator it is given."""

    def __init__(self, draw: ZooDraw, rng: np.random.Generator):
        self.draw = draw
        self.rng = rng
        size = draw.size
        self.side = max(4, round(draw.scale * size))
        self.digit_side = size // 2 if draw.placement != "tied" else round(size * 0.4)
        # A fixed placement: one spot for the whole set, in the border (drawn once).
        self.fixed_origin = self._border_origin(self.side, self.side)

    def _border_origin(self, height: int, width: int) -> tuple[int, int]:
        """A random (row, col) where a height x width box fits the image without touching the
        centred digit's box."""
        size, lo = self.draw.size, (self.draw.size - self.digit_side) // 2
        hi = lo + self.digit_side
        while True:
            row = int(self.rng.integers(0, size - height + 1))
            col = int(self.rng.integers(0, size - width + 1))
            if row + height <= lo or row >= hi or col + width <= lo or col >= hi:
                return row, col

    def _stamp(self, label: int) -> tuple[np.ndarray, np.ndarray]:
        """(alpha float 0..1 hxw, colour float 3 or hxwx3) of the shortcut of class `label`."""
        kind, side = self.draw.kind, self.side
        if kind == "patch":
            return np.ones((side, side)), np.asarray(PALETTE[label], dtype=np.float64)
        grey = np.full(3, float(self.rng.uniform(170, 240)))  # colour carries nothing
        if kind == "glyph":
            return _glyph_stamp(label, side).astype(np.float64), grey
        if kind == "text":
            return _text_stamp(label, side).astype(np.float64), grey
        if kind == "texture":
            stripes = _texture_stamp(label, side, float(self.rng.uniform(0, 2 * np.pi)))
            return np.ones((side, side)), stripes[..., None] * grey + (1 - stripes[..., None]) * 40.0
        if kind == "object":
            return _object_stamp(label, side).astype(np.float64), self.rng.uniform(60, 255, size=3)
        raise AssertionError(kind)

    def render(self, digit8: np.ndarray, label: Optional[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image uint8 HxWx3 with the shortcut of class `label`, the same image without it,
        truth mask int8 HxW); `label` None: no shortcut (the mask has green only)."""
        draw, size = self.draw, self.draw.size
        digit_side = self.digit_side
        if draw.placement == "tied":  # the object moves; the shortcut keeps its place beside it
            top = int(self.rng.integers(0, size - digit_side + 1))
            left = int(self.rng.integers(0, size - digit_side - self.side - 1 + 1))
        else:
            top = left = (size - digit_side) // 2
        ink = _digit_layer(digit8, digit_side)
        canvas = self.rng.normal(0.0, draw.noise_sigma, size=(size, size, 3))
        canvas[top : top + digit_side, left : left + digit_side] += (ink * draw.digit_contrast)[..., None]
        clean = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        mask = np.zeros((size, size), dtype=np.int8)
        mask[top : top + digit_side, left : left + digit_side][_grow(ink >= _INK_THRESHOLD)] = GREEN
        if label is None:
            return clean, clean, mask
        image = canvas.copy()
        if draw.kind == "frame":
            thickness = max(1, round(self.side / 3))
            alpha = np.zeros((size, size))
            alpha[:thickness], alpha[-thickness:], alpha[:, :thickness], alpha[:, -thickness:] = 1, 1, 1, 1
            colour = np.asarray(PALETTE[label], dtype=np.float64)
            row = col = 0
        else:
            alpha, colour = self._stamp(label)
            height, width = alpha.shape
            if draw.placement == "fixed":
                row, col = self.fixed_origin
                row, col = min(row, size - height), min(col, size - width)
            elif draw.placement == "moving":
                row, col = self._border_origin(height, width)
            else:  # beside the digit's right edge, vertically centred on it, 1 px apart
                row = min(max(0, top + (digit_side - height) // 2), size - height)
                col = left + digit_side + 1
                col = min(col, size - width)
        height, width = alpha.shape
        region = image[row : row + height, col : col + width]
        weight = (alpha * draw.opacity)[..., None]
        colour = np.broadcast_to(colour, region.shape)
        image[row : row + height, col : col + width] = (1 - weight) * region + weight * colour
        pixels = np.zeros((size, size), dtype=bool)
        pixels[row : row + height, col : col + width] = alpha > 0
        mask[pixels] = RED
        return np.clip(np.rint(image), 0, 255).astype(np.uint8), clean, mask


def make_zoo_data(out_dir: str | os.PathLike, draw: ZooDraw) -> Path:
    """Write the zoo draw `draw` (see the module docstring) into `out_dir`, which must not exist
    or be empty. Returns `out_dir` as a Path. Raises DatasetError for a folder that holds
    something already."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    root = Path(out_dir)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DatasetError(f"Cannot make zoo data in {root}: it is not an empty folder. Choose a new folder.")
    digits = load_digits()
    images8, targets = digits.images, digits.target.astype(np.int64)
    rng = np.random.default_rng([draw.seed, 7])
    assignment = _split_assignment(targets, rng)
    renderer = _Renderer(draw, rng)
    truth_text = _png_text({"source": "zoo-truth"})
    counts = {split: 0 for split in SPLITS}
    carried = {split: 0 for split in SPLITS}
    for i, (digit8, label) in enumerate(zip(images8, targets)):
        split = assignment[i]
        if split == "test":
            shortcut: Optional[int] = int(rng.integers(0, 10))
        else:
            shortcut = int(label) if rng.random() < draw.share else None
        image, clean, mask = renderer.render(digit8, shortcut)
        relpath = f"{label}/{i:04d}.png"
        outputs = [(root / split / relpath, image), (root / "truth" / split / relpath, None)]
        if split != "test":
            outputs.append((root / "oracle" / split / relpath, clean))
        for path, pixels in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            if pixels is None:
                mask_to_image(mask).save(path, format="PNG", pnginfo=truth_text)
            else:
                Image.fromarray(pixels, mode="RGB").save(path, format="PNG")
        counts[split] += 1
        carried[split] += shortcut is not None
    record = {
        "version": DEMO_VERSION,
        "zoo": dataclasses.asdict(draw),
        "description": draw.describe(),
        "seed": draw.seed,
        "counts": counts,
        "carrying_shortcut": carried,
        "classes": [str(d) for d in range(10)],
        "image_size": draw.size,
        "source": "sklearn.datasets.load_digits",
    }
    (root / "demo.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return root
