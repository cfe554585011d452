"""Plain shortcut models over the shortcut zoo, made once and kept: the subjects of the
explanation benches (`saliency_pointing.py`, `discovery_hits.py`, `unreasonable_first.py`).

`plain_zoo_model(seed, share, work, epochs)` draws the zoo data set of `seed` (with the share of
shortcut-carrying images drawn from `share`), trains small_cnn on it without masks for `epochs`
epochs and returns a `ZooSubject` (draw, data folder, checkpoint, the model, its training
data and the truth masks). A subject already in `work` is loaded, not retrained, so the benches
share models and a second run costs seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import torch
from effectiveness_runs import run_trainer

from app.engine import FinetuneConfig, RunPaths, TrainConfig
from app.engine.checkpoint import load_checkpoint, model_from_checkpoint
from datasets import ImageFolderData
from datasets.masks import read_mask
from datasets.zoo import ZooDraw, draw_zoo, make_zoo_data


@dataclass
class ZooSubject:
    draw: ZooDraw
    data: Path  # the draw's folder (train/ val/ test/ truth/ oracle/)
    checkpoint: Path
    model: torch.nn.Module  # eval mode, CPU
    train: ImageFolderData  # data/train at the model's input size and normalisation
    test_accuracy: float  # on test/, where every image carries a shortcut of a random class

    def truth(self, split: str, relpaths: List[str]) -> torch.Tensor:
        """N x S x S truth masks in {-1, 0, +1} (red = the shortcut's pixels, green = the digit)."""
        size = (self.draw.size, self.draw.size)
        return torch.stack([read_mask(self.data / "truth" / split / r, size) for r in relpaths])


def plain_zoo_model(seed: int, share: Tuple[float, float], work: Path, epochs: int = 4) -> ZooSubject:
    """The plain small_cnn of zoo draw `seed` (32 px), made in `work/<share>/draw<seed>` once."""
    draw = draw_zoo(seed, sizes=(32,), share=share)
    folder = work / f"share{share[0]:.2f}-{share[1]:.2f}" / f"draw{seed}-e{epochs}"
    data, checkpoint, done = folder / "data", folder / "model.pt", folder / "done.json"
    if not done.exists():
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        make_zoo_data(data, draw)
        config = TrainConfig(model="small_cnn", epochs=epochs, seed=0, device="cpu", guidance=None, input_size=draw.size)
        paths = RunPaths(str(data / "train"), str(data / "val"), checkpoint_out=str(checkpoint), test_dir=str(data / "test"))
        run_trainer(config, paths, FinetuneConfig())
        done.write_text(json.dumps({"test_accuracy": None}), encoding="utf-8")
    loaded = load_checkpoint(checkpoint)
    model = model_from_checkpoint(loaded).eval()
    train = ImageFolderData(data / "train", loaded.input_size, loaded.mean, loaded.std)
    record = json.loads(done.read_text(encoding="utf-8"))
    accuracy = record.get("test_accuracy")
    if accuracy is None:
        accuracy = _accuracy(model, ImageFolderData(data / "test", loaded.input_size, loaded.mean, loaded.std))
        done.write_text(json.dumps({"test_accuracy": accuracy}), encoding="utf-8")
    return ZooSubject(draw, data, checkpoint, model, train, float(accuracy))


def _accuracy(model: torch.nn.Module, data: ImageFolderData) -> float:
    from torch.utils.data import DataLoader

    from app.engine.loops import evaluate

    return round(float(evaluate(model, DataLoader(data, batch_size=256), device=torch.device("cpu"))["accuracy"]), 4)


def carrying(subject: ZooSubject, split: str = "train") -> List[bool]:
    """Per image of `split` (in the data set's order), whether it carries the shortcut."""
    data = subject.train if split == "train" else None
    relpaths = data.relpaths if data is not None else []
    size = (subject.draw.size, subject.draw.size)
    return [bool((read_mask(subject.data / "truth" / split / r, size) > 0).any()) for r in relpaths]
