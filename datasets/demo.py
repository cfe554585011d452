"""The demo shortcut benchmark: scikit-learn's 8x8 digits with a Decoy-MNIST swatch.

Every 32x32 grayscale image shows a faint digit (the 8x8 original, ink 0..16 -> 0..153 white
on black, upscaled bilinearly to 16x16 and centred, so it spans pixels 8..23) under Gaussian
noise (sigma 30 grey levels), and a shortcut in the 8-pixel border around it, so the shortcut
never touches the digit. Three kinds of shortcut (`SHORTCUTS`):

- `corner` (the default, Decoy MNIST): a clean 6x6 swatch in one of the four corners, chosen at
  random per image, whose shade gives the label away;
- `moving`: the same shaded swatch, but anywhere in the border (uniform over every position
  where it does not overlap the digit's box), and with `vary_size` of a random side in
  `MOVING_SIDES` per image: a shortcut that moves like a watermark or a stamp;
- `shape`: a small glyph (one of ten 7x7 shapes, `GLYPHS`, one per digit) at a random position in
  the border, always the same grey: the *form* of the mark gives the label away, not its shade
  (a hospital tag, a letter, a ruler's markings). The truth mask's red is the glyph's own
  pixels; a person's brush covers them with a margin.

The faint, noisy digit and the larger swatch are chosen so that a plain small CNN clearly learns
the shortcut, which with the RRR paper's bright digit and 4x4 swatch it barely did
(docs/demo_data.md has the measurements). In `train` and `val` the swatch shade is `255 - 25*y`
(y the digit): a perfect shortcut. In `test` it is `255 - 25*r`, r random per image, so a model
that learnt the shortcut fails there. The recipe is the RRR paper's Decoy MNIST; the digits ship
inside scikit-learn (1,797 images), so nothing is downloaded.

Layout (relpaths "<digit>/<name>.png", the same in every tree):
    out/train|val|test/<digit>/<name>.png     the images
    out/truth/<split>/<digit>/<name>.png      ground-truth masks (datasets.masks format):
                                              red over the swatch, green over the digit's ink
    out/README.txt, out/demo.json             description; seed and counts
The same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image

from .demo_options import SHORTCUTS
from .errors import DatasetError
from .masks import GREEN, RED, _png_text, mask_to_image

log = logging.getLogger(__name__)

DEMO_VERSION = "demo-v2"
SPLITS = ("train", "val", "test")
_SPLIT_FRACTIONS = {"val": 0.2, "test": 0.2}  # the rest (about 60%) is train
CANVAS = 32  # side of each image
DIGIT_SIDE = 16  # side of the upscaled digit, centred on the canvas
DIGIT_OFFSET = (CANVAS - DIGIT_SIDE) // 2  # 8: the border the swatch lives in
SWATCH = 6  # side of the swatch
DIGIT_CONTRAST = 0.6  # full ink is drawn at this share of white: a harder digit than the swatch
NOISE_SIGMA = 30.0  # Gaussian noise on every pixel but the swatch, in grey levels
# Upscaled ink at or above this counts as the digit for the green truth mask (a quarter of full
# ink: the stroke, not the faint bilinear fringe), then grown by 1 pixel to cover the soft edge.
_INK_THRESHOLD = 64
MOVING_SIDES = (4, 8)  # `moving` with vary_size: swatch side drawn uniformly from 4..8 pixels
GLYPH_SHADE = 230  # grey level of a `shape` glyph's pixels
# Ten 7x7 glyphs, one per digit ("#" = glyph pixel), all the same grey: the form tells the digit.
_GLYPH_ART = (
    ("#######", "#.....#", "#.....#", "#.....#", "#.....#", "#.....#", "#######"),  # 0 square ring
    ("...#...", "...#...", "...#...", "#######", "...#...", "...#...", "...#..."),  # 1 plus
    ("#.....#", ".#...#.", "..#.#..", "...#...", "..#.#..", ".#...#.", "#.....#"),  # 2 cross
    ("...#...", "..###..", ".#####.", "#######", ".#####.", "..###..", "...#..."),  # 3 diamond
    ("...#...", "..#.#..", ".#...#.", "#.....#", "#######", ".......", "......."),  # 4 triangle
    ("#......", "#......", "#......", "#......", "#......", "#......", "#######"),  # 5 L
    ("#######", "...#...", "...#...", "...#...", "...#...", "...#...", "...#..."),  # 6 T
    ("#.#.#.#", ".......", "#.#.#.#", ".......", "#.#.#.#", ".......", "#.#.#.#"),  # 7 dots
    ("#######", ".......", "#######", ".......", "#######", ".......", "#######"),  # 8 bars
    ("#......", ".#.....", "..#....", "...#...", "....#..", ".....#.", "......#"),  # 9 diagonal
)
GLYPHS = tuple(np.array([[c == "#" for c in row] for row in art]) for art in _GLYPH_ART)

_README = """\
Demo shortcut data ({version}, seed {seed}) made by saliency-steering.

A "Decoy MNIST" benchmark built from scikit-learn's 8x8 handwritten digits (1,797 images).
Each 32x32 grayscale image is a faint, noisy digit (upscaled to 16x16, centred) plus a clean
6x6 swatch in a random corner. In train/ and val/ the swatch shade is 255 - 25 * digit, so the swatch alone
predicts the label (a shortcut). In test/ the shade is 255 - 25 * r with r random, so a model
that relies on the swatch fails there, while one that reads the digit does not.
Shortcut kind: {shortcut} (corner: a random corner; moving: anywhere in the border; shape: a
glyph per digit anywhere in the border, random glyph in test/).

  train/<digit>/*.png   {train} images
  val/<digit>/*.png     {val} images
  test/<digit>/*.png    {test} images
  truth/<split>/<digit>/*.png   ground-truth masks: red (255,0,0) over the swatch
                                (discourage), green (0,255,0) over the digit (encourage),
                                transparent elsewhere.

Painting the swatch red on a few training images and fine-tuning should move the model's
attention to the digit and raise its test accuracy.
"""


@dataclass(frozen=True)
class DemoInfo:
    """What make_demo_data wrote."""

    root: Path  # the demo folder
    seed: int  # the seed it was made with
    counts: Mapping[str, int] = field(default_factory=dict)  # images per split
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))  # class folder names

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def val_dir(self) -> Path:
        return self.root / "val"

    @property
    def test_dir(self) -> Path:
        return self.root / "test"

    def truth_dir(self, split: str) -> Path:
        """Ground-truth masks of `split` ("train", "val" or "test"), a mask folder."""
        if split not in SPLITS:
            raise DatasetError(f"The demo data has the splits {', '.join(SPLITS)}; not {split!r}.")
        return self.root / "truth" / split

    @classmethod
    def from_dir(cls, root: str | os.PathLike) -> DemoInfo:
        """Describe an existing demo folder from its demo.json."""
        root = Path(root)
        try:
            record = json.loads((root / "demo.json").read_text(encoding="utf-8"))
            return cls(root, int(record["seed"]), dict(record["counts"]), tuple(record["classes"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DatasetError(f"{root} is not a complete demo folder ({error}). Delete it and it will be made again.") from None


def default_demo_dir(shortcut: str = "corner") -> Path:
    """The per-user cache folder of the demo data: $XDG_CACHE_HOME (or ~/.cache) /
    saliency-steering/demo-v2 (the corner demo) or demo-v2-<shortcut> (the others)."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    name = DEMO_VERSION if shortcut == "corner" else f"{DEMO_VERSION}-{shortcut}"
    return base / "saliency-steering" / name


def _split_assignment(targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split name per image: per class, 20% test, 20% val, the rest train (seeded)."""
    assignment = np.empty(len(targets), dtype=object)
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        n_test = int(round(len(members) * _SPLIT_FRACTIONS["test"]))
        n_val = int(round(len(members) * _SPLIT_FRACTIONS["val"]))
        assignment[members[:n_test]] = "test"
        assignment[members[n_test : n_test + n_val]] = "val"
        assignment[members[n_test + n_val :]] = "train"
    return assignment


def _dilate(region: np.ndarray) -> np.ndarray:
    """bool HxW grown by one pixel in all 8 directions."""
    padded = np.pad(region, 1)
    grown = np.zeros_like(region)
    height, width = region.shape
    for dy in range(3):
        for dx in range(3):
            grown |= padded[dy : dy + height, dx : dx + width]
    return grown


def _corner_origin(corner: int) -> tuple[int, int]:
    """(row, col) of the swatch's top-left pixel for corner 0..3 (TL, TR, BL, BR)."""
    far = CANVAS - SWATCH
    return ((0, 0), (0, far), (far, 0), (far, far))[corner]


def border_origins(side: int) -> list[tuple[int, int]]:
    """Every (row, col) where a side x side square fits the canvas without touching the digit box."""
    box = range(DIGIT_OFFSET - side + 1, DIGIT_OFFSET + DIGIT_SIDE)  # origins that would overlap it
    return [(row, col) for row in range(CANVAS - side + 1) for col in range(CANVAS - side + 1) if not (row in box and col in box)]


def _digit_canvas(digit8: np.ndarray, noise: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(image float64 32x32 before clipping, digit region bool 32x32) of one faint digit."""
    ink = np.rint(np.asarray(digit8, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    upscaled = np.asarray(Image.fromarray(ink, mode="L").resize((DIGIT_SIDE, DIGIT_SIDE), Image.Resampling.BILINEAR))
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.float64)
    box = slice(DIGIT_OFFSET, DIGIT_OFFSET + DIGIT_SIDE)
    canvas[box, box] = upscaled * DIGIT_CONTRAST
    if noise is not None:
        canvas += noise
    digit_region = np.zeros((CANVAS, CANVAS), dtype=bool)
    digit_region[box, box] = _dilate(upscaled >= _INK_THRESHOLD)
    return canvas, digit_region


def _compose(
    canvas: np.ndarray, digit_region: np.ndarray, shortcut: np.ndarray, shortcut_pixels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8, truth mask int8): `shortcut_pixels` (bool) set to `shortcut`'s values."""
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    image[shortcut_pixels] = shortcut[shortcut_pixels]
    mask = np.zeros((CANVAS, CANVAS), dtype=np.int8)
    mask[digit_region] = GREEN
    mask[shortcut_pixels] = RED
    return image, mask


def render_digit(digit8: np.ndarray, corner: int, shade: int, noise: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One corner-demo image and its truth mask (a 6x6 swatch of `shade` in corner 0..3).

    digit8: 8x8 ink in 0..16; noise: 32x32 grey levels added before the swatch (None: none).
    Returns (image np.uint8 32x32, mask np.int8 32x32 in {-1,0,+1}).
    """
    return render_swatch(digit8, _corner_origin(corner), SWATCH, shade, noise)


def render_swatch(
    digit8: np.ndarray, origin: tuple[int, int], side: int, shade: int, noise: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One image with a clean side x side swatch of `shade` at `origin` (row, col), and its mask."""
    canvas, digit_region = _digit_canvas(digit8, noise)
    pixels = np.zeros((CANVAS, CANVAS), dtype=bool)
    pixels[origin[0] : origin[0] + side, origin[1] : origin[1] + side] = True
    return _compose(canvas, digit_region, np.full((CANVAS, CANVAS), shade, np.uint8), pixels)


def render_glyph(
    digit8: np.ndarray, origin: tuple[int, int], glyph: int, noise: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One image with glyph 0..9 (`GLYPHS`) drawn at `origin` (row, col), and its mask.

    Only the glyph's own pixels are set (to `GLYPH_SHADE`); the rest of its 7x7 box keeps the
    noisy background. The truth mask's red is exactly the glyph's pixels.
    """
    canvas, digit_region = _digit_canvas(digit8, noise)
    shape = GLYPHS[glyph]
    pixels = np.zeros((CANVAS, CANVAS), dtype=bool)
    pixels[origin[0] : origin[0] + shape.shape[0], origin[1] : origin[1] + shape.shape[1]] = shape
    return _compose(canvas, digit_region, np.full((CANVAS, CANVAS), GLYPH_SHADE, np.uint8), pixels)


def make_demo_data(out_dir: str | os.PathLike, seed: int = 0, shortcut: str = "corner", vary_size: bool = False) -> DemoInfo:
    """Write the demo benchmark (see the module docstring) into `out_dir`.

    shortcut: one of `SHORTCUTS`; vary_size: `moving` only, a random swatch side in
    `MOVING_SIDES` per image (else 6). `out_dir` must not exist or be empty. Deterministic: the
    same arguments give byte-identical files. Raises DatasetError when `out_dir` is a file or
    holds something already, or for an unknown shortcut.
    """
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    if shortcut not in SHORTCUTS:
        raise DatasetError(f"Unknown demo shortcut {shortcut!r}; choose one of {', '.join(SHORTCUTS)}.")
    if vary_size and shortcut != "moving":
        raise DatasetError("Varying the swatch size needs the 'moving' shortcut.")
    root = Path(out_dir)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DatasetError(f"Cannot make the demo data in {root}: it is not an empty folder. Choose a new folder.")
    digits = load_digits()
    images8, targets = digits.images, digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    assignment = _split_assignment(targets, rng)
    corners = rng.integers(0, 4, size=len(targets))
    random_labels = rng.integers(0, 10, size=len(targets))
    # Drawn from a generator of their own, so the corner demo stays byte-identical to before.
    placement = np.random.default_rng([seed, SHORTCUTS.index(shortcut)])

    truth_text = _png_text({"source": "demo-truth"})
    counts = {split: 0 for split in SPLITS}
    class_counts = {split: {str(d): 0 for d in range(10)} for split in SPLITS}
    for i, (digit8, label) in enumerate(zip(images8, targets)):
        split = assignment[i]
        shade_label = random_labels[i] if split == "test" else label
        noise = rng.normal(0.0, NOISE_SIGMA, size=(CANVAS, CANVAS))
        if shortcut == "corner":
            image, mask = render_digit(digit8, int(corners[i]), 255 - 25 * int(shade_label), noise)
        elif shortcut == "moving":
            side = int(placement.integers(MOVING_SIDES[0], MOVING_SIDES[1] + 1)) if vary_size else SWATCH
            origins = border_origins(side)
            origin = origins[int(placement.integers(len(origins)))]
            image, mask = render_swatch(digit8, origin, side, 255 - 25 * int(shade_label), noise)
        else:
            origins = border_origins(GLYPHS[0].shape[0])
            origin = origins[int(placement.integers(len(origins)))]
            image, mask = render_glyph(digit8, origin, int(shade_label), noise)
        relpath = f"{label}/{i:04d}.png"
        image_file = root / split / relpath
        truth_file = root / "truth" / split / relpath
        image_file.parent.mkdir(parents=True, exist_ok=True)
        truth_file.parent.mkdir(parents=True, exist_ok=True)
        # Plain saves: the folder as a whole is made atomically by ensure_demo_data.
        Image.fromarray(image, mode="L").save(image_file, format="PNG")
        mask_to_image(mask).save(truth_file, format="PNG", pnginfo=truth_text)
        counts[split] += 1
        class_counts[split][str(label)] += 1

    info = DemoInfo(root, int(seed), counts)
    record = {
        "version": DEMO_VERSION,
        "seed": int(seed),
        "counts": counts,
        "shortcut": shortcut,
        "vary_size": bool(vary_size),
        "class_counts": class_counts,
        "classes": list(info.classes),
        "image_size": CANVAS,
        "digit_box": [DIGIT_OFFSET, DIGIT_OFFSET + DIGIT_SIDE],
        "swatch_size": SWATCH if shortcut == "corner" or not vary_size else list(MOVING_SIDES),
        "digit_contrast": DIGIT_CONTRAST,
        "noise_sigma": NOISE_SIGMA,
        "swatch_shade": "255 - 25 * y (train, val); 255 - 25 * r, r random (test)",
        "source": "sklearn.datasets.load_digits",
    }
    (root / "demo.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (root / "README.txt").write_text(
        _README.format(version=DEMO_VERSION, seed=seed, shortcut=shortcut, **counts), encoding="utf-8"
    )
    log.info("Made demo data in %s: %s", root, counts)
    return info


def ensure_demo_data(
    dir: str | os.PathLike | None = None,  # noqa: A002 -- API name
    shortcut: str = "corner",
) -> Path:
    """The demo folder (default: default_demo_dir(shortcut)), made once with seed 0 and reused.

    `moving` is made with `vary_size` (a watermark's size varies too).

    It is built in a temporary folder next to it and renamed into place, so an interrupted or
    concurrent run never leaves a half-made folder behind. Raises DatasetError when the folder
    exists but holds something else.
    """
    target = Path(dir).expanduser() if dir is not None else default_demo_dir(shortcut)
    if (target / "demo.json").is_file():
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DatasetError(
            f"{target} exists but holds no demo data (no demo.json). Delete it, or choose another folder for the demo data."
        )
    build_demo_data(target, seed=0, shortcut=shortcut, vary_size=shortcut == "moving", exist_ok=True)
    return target


def build_demo_data(
    out_dir: str | os.PathLike, seed: int = 0, shortcut: str = "corner", vary_size: bool = False, exist_ok: bool = False
) -> DemoInfo:
    """`make_demo_data` into a hidden temporary folder beside `out_dir`, renamed into place
    once complete, so a half-made folder is never read as data (docs/demo_data.md). A kill
    leaves only the hidden `.<name>.building-*` folder (never read as data; delete it at
    leisure). With `exist_ok`, another process that made the same folder first wins; otherwise
    DatasetError when `out_dir` holds anything."""
    target = Path(out_dir).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DatasetError(f"Cannot make the demo data in {target}: it is not an empty folder. Choose a new folder.")
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        os.chmod(building, 0o755)  # mkdtemp makes it owner-only; this is an ordinary folder
        make_demo_data(building, seed=seed, shortcut=shortcut, vary_size=vary_size)
        try:
            os.rename(building, target)  # replaces an empty folder, fails on a full one
        except OSError:
            if not (exist_ok and (target / "demo.json").is_file()):
                raise
            log.info("Another process made %s first; using it", target)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return DemoInfo.from_dir(target)
