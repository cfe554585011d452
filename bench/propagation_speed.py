"""How fast content propagation runs: locator training and images located per second.

Synthetic images (a smooth noisy background with a flat patch of random colour and place) at
32 px and 224 px input size; the locator trains on 6 painted images and locates the patch in N
others, in batches as `app.explain.propagation.locate_content` does (image loading not included: the
data loader's cost is the same as for any epoch). Prints one line per size.

    python bench/propagation_speed.py                  # CPU, 2,000 images at 32 px, 200 at 224 px
    python bench/propagation_speed.py --device cuda --n224 10000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from app.explain.content_locator import ContentLocator, LocatorConfig  # noqa: E402


def scenes(n: int, side: int, seed: int):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / (side - 1)
    images = np.empty((n, 3, side, side), np.float32)
    patches = np.zeros((n, side, side), bool)
    for i in range(n):
        base = rng.uniform(0.1, 0.5) + rng.uniform(-0.2, 0.2) * xx + rng.uniform(-0.2, 0.2) * yy
        images[i] = np.repeat(base[None], 3, 0) + rng.normal(0, 0.08, (3, side, side))
        size = int(side * rng.uniform(0.12, 0.22))
        row, col = (int(v) for v in rng.integers(0, side - size, 2))
        patches[i, row : row + size, col : col + size] = True
        images[i][:, patches[i]] = rng.uniform(0.2, 1.0, (3, 1))
    return torch.from_numpy(np.clip(images, 0, 1)), patches


def measure(side: int, n: int, device: torch.device, batch: int) -> str:
    painted, red = scenes(6, side, 0)
    others, truth = scenes(n, side, 1)
    started = time.perf_counter()
    locator = ContentLocator(LocatorConfig(), device).fit(painted, list(red))
    fitted = time.perf_counter()
    found = []
    for start in range(0, n, batch):
        found.extend(locator.locate(others[start : start + batch]))
    if device.type == "cuda":
        torch.cuda.synchronize()
    done = time.perf_counter()
    hits = np.mean(
        [
            bool(
                (
                    f.mask
                    & np.asarray(
                        torch.nn.functional.interpolate(torch.from_numpy(t[None, None].astype(np.float32)), size=f.mask.shape)[
                            0, 0
                        ]
                        > 0
                    )
                ).any()
            )
            for f, t in zip(found, truth)
        ]
    )
    return (
        f"{side:>4} px (working side {locator.side}): fit {fitted - started:5.1f} s, locate {n / (done - fitted):8.1f} "
        f"images/s over {n} images ({device}, {torch.get_num_threads()} threads); patch found in {100 * hits:.0f} %"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n32", type=int, default=2000)
    parser.add_argument("--n224", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(measure(32, args.n32, device, args.batch), flush=True)
    print(measure(224, args.n224, device, min(args.batch, 64)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
