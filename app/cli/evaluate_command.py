"""The `evaluate` command: accuracy (and saliency on the masks) of a checkpoint, as JSON."""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

from torch.utils.data import DataLoader

from app.cli.common import EXIT_OK, dumps
from app.engine.checkpoint import load_checkpoint, model_from_checkpoint
from app.engine.loops import evaluate
from app.explain.explanation_metrics import gradient_saliency, mass_share
from app.explain.mask_audit import check_masks_folder
from datasets import ImageFolderData, stack_samples
from models import pick_device


def load_model_and_data(checkpoint_path: str, data_dir: str, masks_dir: Optional[str], device_name: str):
    """(model in eval mode on its device, ImageFolderData at the checkpoint's input size, device).

    CheckpointError when the folder's classes are not the checkpoint's.
    """

    checkpoint = load_checkpoint(checkpoint_path)
    device = pick_device(device_name)
    data = ImageFolderData(data_dir, checkpoint.input_size, checkpoint.mean, checkpoint.std, masks_dir=masks_dir)
    checkpoint.check_compatible(classes=data.classes)
    model = model_from_checkpoint(checkpoint).to(device)
    model.eval()
    return model, data, device


def evaluate_checkpoint(
    checkpoint_path: str, data_dir: str, masks_dir: Optional[str] = None, device_name: str = "auto"
) -> Dict[str, Any]:
    """accuracy, loss, n_images, per_class_accuracy (+ saliency_on_red/green with masks)."""

    model, data, device = load_model_and_data(checkpoint_path, data_dir, masks_dir, device_name)
    loader = DataLoader(data, batch_size=128, shuffle=False)
    result = evaluate(model, loader, device=device, classes=data.classes)
    result["n_skipped"] = len(data.skipped)
    if masks_dir is not None:
        indices = data.annotated_indices()
        reds: List[float] = []
        greens: List[float] = []
        for start in range(0, len(indices), 64):
            images, targets, masks, _ = stack_samples(data, indices[start : start + 64], device)
            red, green = mass_share(gradient_saliency(model, images, targets), masks.cpu())
            reds += red.tolist()
            greens += green.tolist()
        result["n_annotated"] = len(indices)
        result["saliency_on_red"] = sum(reds) / len(reds) if reds else None
        result["saliency_on_green"] = sum(greens) / len(greens) if greens else None
    return result


def cmd_evaluate(args: argparse.Namespace) -> int:

    check_masks_folder(args.masks)
    result = evaluate_checkpoint(args.checkpoint, args.data, args.masks, args.device)
    print(dumps(result))
    return EXIT_OK
