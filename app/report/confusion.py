"""The final model's confusion matrix on the session's validation split (the trainer's split)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch.utils.data import DataLoader

from app.engine.checkpoint import Checkpoint, model_from_checkpoint
from app.run.session import Session
from datasets import load_splits
from models import pick_device


@dataclass
class ConfusionFacts:
    classes: List[str]
    matrix: List[List[int]]  # [true][predicted] counts
    split: str  # which images: "validation folder ..." or "20 % of the training folder"

    @property
    def accuracy(self) -> float:
        total = sum(sum(row) for row in self.matrix)
        return sum(self.matrix[i][i] for i in range(len(self.matrix))) / total if total else float("nan")


def confusion_on_validation(
    session: Session, checkpoint: Checkpoint, device_name: str = "cpu"
) -> Tuple[ConfusionFacts, Dict[str, int]]:
    """(confusion on validation, training images per class). The split is the trainer's: the
    validation folder, or the same seeded share of the training folder."""
    config = session.train_config
    splits = load_splits(
        session.train_dir,
        session.val_dir,
        input_size=checkpoint.input_size,
        mean=checkpoint.mean,
        std=checkpoint.std,
        val_fraction=config.val_fraction,
        seed=config.seed,
    )
    checkpoint.check_compatible(classes=splits.train.classes)
    device = pick_device(device_name)
    model = model_from_checkpoint(checkpoint).to(device)
    model.eval()
    classes = list(checkpoint.classes)
    matrix = torch.zeros(len(classes), len(classes), dtype=torch.long)
    with torch.inference_mode():
        for batch in DataLoader(splits.val, batch_size=128, shuffle=False):
            predicted = model(batch.image.to(device)).argmax(dim=1).cpu()
            matrix.index_put_((batch.target, predicted), torch.ones_like(predicted), accumulate=True)
    where = (
        f"validation folder {session.val_dir}"
        if session.val_dir
        else f"{100 * config.val_fraction:.0f} % of the training folder (seed {config.seed})"
    )
    counts = splits.train.class_counts()
    return ConfusionFacts(classes, matrix.tolist(), where), counts
