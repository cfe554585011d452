"""Where does content propagation miss the shortcut? Per-image coverage of the located masks.

On a demo folder (demo-data output), the simulated user paints K random training images (red over
the swatch with a 1 px brush margin, green over the digit), `app.explain.propagation.plan_propagation`
with scope "content" locates the content in every other training image, and each finding is
compared with the truth mask: share of the swatch covered, pixels found outside it, whether the
image got a mask. Prints coverage broken down by the swatch's shade (= its class in train), its
size and whether it touches the image edge, and optionally saves PNG grids of the worst images.

    python bench/locator_coverage.py --data /tmp/moving --seeds 0 1 2 --k 6 --grid /tmp/grids
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from simulated_user import SimulatedUser  # noqa: E402

from app.explain.content_locator import LocatorConfig  # noqa: E402
from app.explain.propagation import plan_propagation  # noqa: E402
from datasets import GREEN, RED, ImageFolderData  # noqa: E402
from datasets.masks import read_mask_array  # noqa: E402
from models import model_spec  # noqa: E402


def coverage_rows(demo: Path, k: int, seed: int, config: LocatorConfig = LocatorConfig()):
    spec = model_spec("small_cnn")
    with tempfile.TemporaryDirectory() as scratch:
        data = ImageFolderData(demo / "train", spec.input_size, spec.mean, spec.std, masks_dir=scratch)
        rng = np.random.default_rng(seed)
        painted = [data.relpaths[i] for i in sorted(rng.choice(len(data.relpaths), size=k, replace=False))]
        SimulatedUser(demo / "truth" / "train").paint(data.masks, painted)
        plan = plan_propagation(data, painted, "content", locator_config=config)
        rows = []
        for index, relpath in enumerate(data.relpaths):
            if relpath in painted:
                continue
            truth_codes = read_mask_array(demo / "truth" / "train" / Path(relpath).with_suffix(".png"))
            truth, digit = truth_codes == RED, truth_codes == GREEN
            found = plan.found_mask(relpath, truth.shape) if relpath in plan.targets else np.zeros_like(truth)
            ys, xs = np.nonzero(truth)
            side = int(ys.max() - ys.min() + 1) if len(ys) else 0
            edge = bool(len(ys)) and (
                ys.min() == 0 or xs.min() == 0 or ys.max() == truth.shape[0] - 1 or xs.max() == truth.shape[1] - 1
            )
            rows.append(
                dict(
                    relpath=relpath,
                    label=int(data.targets[index]),
                    side=side,
                    edge=edge,
                    masked=relpath in plan.targets,
                    covered=float((found & truth).sum() / max(1, truth.sum())),
                    outside=int((found & ~truth).sum()),
                    on_object=int((found & digit).sum()),
                    found_px=int(found.sum()),
                    truth_px=int(truth.sum()),
                    full=bool((found | ~truth).all()),
                    found=found,
                    truth=truth,
                )
            )
        return rows, plan, data, painted


def summary(rows, key):
    groups = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    lines = []
    for value in sorted(groups):
        g = groups[value]
        lines.append(
            f"  {key}={value!s:<6} n={len(g):4d} masked {np.mean([r['masked'] for r in g]):.3f} "
            f"covered {np.mean([r['covered'] for r in g]):.3f} fully {np.mean([r['full'] for r in g]):.3f} "
            f"outside px {np.mean([r['outside'] for r in g]):5.1f} on object {np.mean([r['on_object'] for r in g]):5.1f}"
        )
    return lines


def grid(rows, data, path: Path, n: int = 32):
    """Worst-covered images: image | truth red | found, each 32 px scaled x4, n rows of triples."""
    worst = sorted(rows, key=lambda r: r["covered"])[:n]
    tiles = []
    for row in worst:
        image = np.array(Image.open(data.image_path(data.index_of(row["relpath"]))).convert("RGB"))
        overlay = image.copy()
        overlay[row["truth"] & ~row["found"]] = (255, 0, 0)  # missed swatch
        overlay[row["found"] & row["truth"]] = (0, 255, 0)  # covered swatch
        overlay[row["found"] & ~row["truth"]] = (0, 0, 255)  # found outside
        tiles.append(np.concatenate([image, np.full((32, 2, 3), 128, np.uint8), overlay], axis=1))
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows_img = [
        np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles[i : i + cols]], axis=1)
        for i in range(0, len(tiles), cols)
    ]
    big = np.concatenate(rows_img, axis=0)
    Image.fromarray(big).resize((big.shape[1] * 4, big.shape[0] * 4), Image.NEAREST).save(path)


def _value(text: str):
    """A --set value: bool, number or string."""
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--grid", help="folder for PNG grids of the worst-covered images")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="FIELD=VALUE", help="LocatorConfig overrides, e.g. fill_holes=False margin=1.0"
    )
    args = parser.parse_args()
    config = LocatorConfig(**{k: _value(v) for k, v in (item.split("=", 1) for item in args.set)})
    torch.set_num_threads(args.threads)
    demo = Path(args.data)
    for seed in args.seeds:
        rows, plan, data, painted = coverage_rows(demo, args.k, seed, config)
        covered = np.array([r["covered"] for r in rows])
        print(f"seed {seed}: painted {painted}, threshold {plan.threshold:.2f}, source IoU {plan.source_iou:.2f}")
        print(
            f"  masked {np.mean([r['masked'] for r in rows]):.3f}, covered {covered.mean():.3f}, "
            f"fully covered {np.mean([r['full'] for r in rows]):.3f}, covered<0.5 {np.mean(covered < 0.5):.3f}, "
            f"outside px {np.mean([r['outside'] for r in rows]):.1f}, "
            f"on object px {np.mean([r['on_object'] for r in rows]):.1f}, "
            f"images with >5 object px {np.mean([r['on_object'] > 5 for r in rows]):.3f} "
            f"(truth px {np.mean([r['truth_px'] for r in rows]):.1f})"
        )
        for key in ("label", "side", "edge"):
            print("\n".join(summary(rows, key)))
        if args.grid:
            Path(args.grid).mkdir(parents=True, exist_ok=True)
            grid(rows, data, Path(args.grid) / f"worst_seed{seed}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
