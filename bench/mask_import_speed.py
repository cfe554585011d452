"""How long an import of many masks takes: scan the data folder, read and check, write.

    PYTHONPATH=. python bench/mask_import_speed.py [--n 10000] [--size 224] [--formats binary coco label-studio]

Makes N images (two classes) and N annotations at SIZE px in a temporary folder, then imports
them with the same calls as `main.py masks import` (tqdm bars on stderr) and prints the seconds
of each phase. The goal of issue 24: 10,000 masks at 224 px in under a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from datasets import MaskStore
from datasets.mask_formats import DataImages, apply_import, read_binary_folder, read_coco, read_label_studio
from datasets.mask_formats.coco_rle import encode_rle
from datasets.masks import GREEN


def bar(description):
    state = {}

    def progress(done, total):
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=description, unit="mask", mininterval=0.5)
        state["bar"].update(done - state["bar"].n)
        if done == total:
            state["bar"].close()

    return progress


def brush_rle(region):
    """Label Studio's brush RLE of `region` (runs only; see tests/test_mask_import.py)."""
    values = np.repeat(np.where(region.ravel(), 255, 0), 4)
    bits = [f"{values.size:032b}", f"{7:05b}"] + [f"{n - 1:04b}" for n in (3, 4, 8, 16)]
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [values.size]])
    for start, stop in zip(starts, stops):
        length = stop - start
        while length > 0:
            piece = min(length, 2**16)
            index, size = next((i, s) for i, s in enumerate((3, 4, 8, 16)) if piece <= 2**s)
            bits.append("1" + f"{index:02b}" + f"{piece - 1:0{size}b}" + f"{values[start]:08b}")
            length -= piece
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return [int(text[i : i + 8], 2) for i in range(0, len(text), 8)]


def make_data(root: Path, n: int, size: int) -> list:
    rng = np.random.default_rng(0)
    relpaths = []
    base = np.tile(np.linspace(0, 255, size, dtype=np.uint8)[None, :, None], (size, 1, 3))
    for i in tqdm(range(n), desc="making images", mininterval=0.5):
        relpath = f"{'ab'[i % 2]}/img_{i:05d}.png"
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(base).save(root / relpath, compress_level=1)
        relpaths.append(relpath)
    regions = []
    for _ in range(n):
        region = np.zeros((size, size), dtype=bool)
        top, left = rng.integers(0, size // 2, 2)
        region[top : top + size // 4, left : left + size // 3] = True
        regions.append(region)
    return list(zip(relpaths, regions))


def write_sources(work: Path, items: list, size: int, formats) -> dict:
    sources = {}
    if "binary" in formats:
        folder = work / "binary"
        for relpath, region in tqdm(items, desc="binary masks", mininterval=0.5):
            path = folder / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.where(region, 255, 0).astype(np.uint8)).save(path, compress_level=1)
        sources["binary"] = folder
    if "coco" in formats:
        images = [{"id": i, "file_name": r, "height": size, "width": size} for i, (r, _) in enumerate(items)]
        annotations = [
            {"id": i, "image_id": i, "category_id": 1, "segmentation": encode_rle(m)} for i, (_, m) in enumerate(items)
        ]
        path = work / "coco.json"
        path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}))
        sources["coco"] = path
    if "label-studio" in formats:
        tasks = []
        for relpath, region in tqdm(items, desc="label studio tasks", mininterval=0.5):
            result = {
                "type": "brushlabels",
                "original_height": size,
                "original_width": size,
                "value": {"format": "rle", "rle": brush_rle(region), "brushlabels": ["object"]},
            }
            tasks.append(
                {"data": {"image": f"/data/upload/1/0123abcd-{Path(relpath).name}"}, "annotations": [{"result": [result]}]}
            )
        path = work / "label_studio.json"
        path.write_text(json.dumps(tasks))
        sources["label-studio"] = path
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--formats", nargs="+", default=["binary", "coco", "label-studio"])
    parser.add_argument("--workdir", help="keep the generated data here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(args.workdir or temporary)
        items = make_data(work / "data", args.n, args.size)
        sources = write_sources(work, items, args.size, args.formats)
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(
            f"{args.n} masks at {args.size} px, {os.cpu_count()} CPUs, load average {load} (other processes: wall time is shared)"
        )
        for fmt, source in sources.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            images = DataImages.scan(work / "data")
            scanned = time.perf_counter()
            if fmt == "binary":
                plan = read_binary_folder(source, images, GREEN, progress=bar(f"{fmt}: reading"))
            else:
                reader = read_coco if fmt == "coco" else read_label_studio
                plan = reader(source, images, [], ["object"], progress=bar(f"{fmt}: reading"))
            read = time.perf_counter()
            store = MaskStore(work / f"masks-{fmt}")
            outcome = apply_import(plan, store, progress=bar(f"{fmt}: writing"))
            done, cpu = time.perf_counter(), time.process_time() - cpu_start
            assert len(outcome.written) == args.n
            print(
                f"{fmt:>12}: total {done - start:5.1f} s = scan data folder {scanned - start:4.1f} s + read and check "
                f"{read - scanned:4.1f} s + write {done - read:4.1f} s ({1000 * (done - start) / args.n:.2f} ms per mask); "
                f"CPU time of this process {cpu:5.1f} s"
            )


if __name__ == "__main__":
    main()
