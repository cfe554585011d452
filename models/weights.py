"""Load pretrained weights from a local file into a model, keeping what fits.

Nothing is ever downloaded: the user points at a file (e.g. torchvision's ImageNet
`resnet18-f37072fd.pth` copied by hand, or a checkpoint of this app). Tensors whose name and
shape match are loaded; the rest (typically the classification head, whose number of classes
differs) keep their fresh initialisation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

# Below this share of the model's parameters (counted in numbers, not tensors) the file is
# taken to be for another architecture rather than the same one with another head.
MIN_MATCHED_FRACTION = 0.5


class WeightsError(ValueError):
    """A weights file that is missing, unreadable, or made for another architecture."""


def _state_dict_from(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a plain state_dict, or of the one under a 'state_dict' / 'model' key."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path} holds no tensors; is it a weights file?")
    # Weights saved from nn.DataParallel / DistributedDataParallel carry a 'module.' prefix.
    if all(k.startswith("module.") for k in tensors):
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return tensors


def load_matching_weights(model: nn.Module, weights_path: str | Path) -> list[str]:
    """Copy into `model` the tensors of `weights_path` whose name and shape match.

    Returns the model's state_dict keys that were not loaded (kept as initialised), e.g. the
    head's `fc.weight`, `fc.bias` when the file has 1000 classes and the model 3.
    Raises `WeightsError` when the file is missing or unreadable, holds no state dict, or
    fewer than half of the model's parameters matched (another architecture).
    """
    path = Path(weights_path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt/foreign file
        raise WeightsError(f"could not read weights from {path}: {exc}") from exc
    source = _state_dict_from(obj, path)

    target = model.state_dict()
    matched = {k: v for k, v in source.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
    skipped = [k for k in target if k not in matched]

    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    loaded = sum(p.numel() for k, p in params.items() if k in matched)
    if total and loaded < MIN_MATCHED_FRACTION * total:
        raise WeightsError(
            f"{path} does not fit this model: only {loaded / total:.0%} of its parameters "
            f"match by name and shape; was it saved from another architecture?"
        )
    model.load_state_dict(matched, strict=False)
    log.info(
        "loaded %d tensors from %s (%.1f%% of parameters); kept initial values for %d: %s",
        len(matched),
        path,
        100.0 * loaded / max(total, 1),
        len(skipped),
        ", ".join(skipped),
    )
    return skipped
