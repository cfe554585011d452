"""Self-describing checkpoints: weights plus everything needed to rebuild and trust them.

A checkpoint is a plain dict (architecture, class names, input size, normalisation, configs,
epoch, metrics, per-epoch history, weights, optimiser state), written to a temp file and moved
into place with `os.replace` so a crash never leaves half a file, and loaded with
`weights_only=True` so opening one never runs code.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from app.engine.config import MAX_INPUT_SIZE, FinetuneConfig, TrainConfig
from app.engine.finite_guard import NonFiniteModelError, state_dict_problem
from app.errors import CheckpointError, UserError
from datasets.atomic_files import atomic_open
from loss import GUIDANCE_NAMES
from models import MODEL_NAMES

FORMAT_VERSION = 1
CONTENT_HASH = "content_sha256"  # hash of everything else in the payload, checked on load


def content_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of a checkpoint payload (every key but CONTENT_HASH): tensors by dtype, shape
    and bytes, everything else by its repr, mappings in key order. A file with 64 flipped
    bytes loaded with 17 changed weights (accuracy 0.50 instead of 0.73): a zip archive of
    stored tensors has no check of its own that torch.load uses."""
    hasher = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            flat = value.detach().cpu().contiguous().reshape(-1)
            hasher.update(f"T{flat.dtype}{tuple(value.shape)}".encode())
            hasher.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        elif isinstance(value, Mapping):
            hasher.update(b"{")
            for key, item in sorted(value.items(), key=lambda pair: repr(pair[0])):
                hasher.update(repr(key).encode() + b":")
                feed(item)
            hasher.update(b"}")
        elif isinstance(value, (list, tuple)):
            hasher.update(b"[")
            for item in value:
                feed(item)
            hasher.update(b"]")
        else:
            hasher.update(repr(value).encode() + b",")

    feed({key: value for key, value in payload.items() if key != CONTENT_HASH})
    return hasher.hexdigest()


@dataclass
class Checkpoint:
    """A loaded checkpoint. `state_dict` holds CPU tensors."""

    model_name: str
    classes: List[str]
    input_size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    epoch: int
    state_dict: Dict[str, torch.Tensor]
    train_config: Dict[str, Any] = field(default_factory=dict)
    finetune_config: Dict[str, Any] = field(default_factory=dict)
    metrics: Dict[str, Any] = field(default_factory=dict)
    history: List[Dict[str, Any]] = field(default_factory=list)
    optimizer_state: Optional[Dict[str, Any]] = None
    path: Optional[str] = None

    def check_compatible(self, model_name: Optional[str] = None, classes: Optional[Sequence[str]] = None) -> None:
        """Raise CheckpointError when it was trained for another architecture or other classes."""
        where = f" ({self.path})" if self.path else ""
        if model_name is not None and model_name != self.model_name:
            raise CheckpointError(
                f"the checkpoint{where} is a '{self.model_name}' model, not '{model_name}'; "
                f"choose --model {self.model_name} or another checkpoint"
            )
        if classes is not None and list(classes) != list(self.classes):
            if len(classes) != len(self.classes):
                detail = f"{len(self.classes)} classes, the data has {len(classes)}"
            else:
                detail = "other class names"
            raise CheckpointError(
                f"the checkpoint{where} was trained on {detail}: checkpoint {list(self.classes)}, data {list(classes)}"
            )


def _plain(value: Any) -> Any:
    """Turn tuples/mappings/numbers into the plain types `weights_only` loading accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def save_checkpoint(
    path: os.PathLike | str,
    model: nn.Module,
    *,
    model_name: str,
    classes: Sequence[str],
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    epoch: int,
    train_config: Mapping[str, Any] = (),
    finetune_config: Mapping[str, Any] = (),
    metrics: Mapping[str, Any] = (),
    history: Sequence[Mapping[str, Any]] = (),
    optimizer: Optional[torch.optim.Optimizer] = None,
) -> Path:
    """Write the checkpoint atomically (temp file in the same folder, then os.replace).

    Raises NonFiniteModelError (and writes nothing) when a weight or buffer is NaN/inf: a
    broken model must never replace a good checkpoint.
    """
    path = Path(path)
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    problem = state_dict_problem(state_dict)
    if problem is not None:
        raise NonFiniteModelError(f"not saving {path}: {problem}")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "classes": list(classes),
        "input_size": int(input_size),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "epoch": int(epoch),
        "train_config": _plain(dict(train_config)),
        "finetune_config": _plain(dict(finetune_config)),
        "metrics": _plain(dict(metrics)),
        "history": _plain(list(history)),
        "state_dict": state_dict,
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
    }
    payload[CONTENT_HASH] = content_hash(payload)
    try:
        with atomic_open(path, "wb") as stream:
            torch.save(payload, stream)
    except RuntimeError as error:
        failure = _write_failure(error, path)
        if failure is error:
            raise
        raise failure from error
    return path


def _write_failure(error: RuntimeError, path: Path) -> BaseException:
    """The OSError behind torch.save's RuntimeError: on a really full disk torch reports
    "[enforce fail at inline_container.cc] unexpected pos" and hides the ENOSPC of the write
    in the exception's context (only OSError was handled: a traceback). Other RuntimeErrors
    are returned unchanged."""
    cause: Optional[BaseException] = error
    while cause is not None:
        if isinstance(cause, OSError):
            return OSError(cause.errno, cause.strerror or str(cause), str(path))
        cause = cause.__cause__ or cause.__context__
    if "inline_container" in str(error) or "PytorchStreamWriter" in str(error):
        return OSError(errno.EIO, f"writing failed ({' '.join(str(error).split())[:200]})", str(path))
    return error


def partial_checkpoint_path(path: os.PathLike | str) -> Path:
    """Where a stop mid-epoch saves: `path` itself while nothing is there, else beside it
    (`model.pt` -> `model.partial.pt`). A partial checkpoint is unvalidated weights from the
    middle of an epoch; a Ctrl+C early in a second run into a finished run's folder once
    replaced its model (accuracy 0.983) with an epoch-0 partial one (0.257)."""
    path = Path(path)
    if not os.path.lexists(path):
        return path
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def load_checkpoint(path: os.PathLike | str) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint; CheckpointError says what is wrong."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, FIFO or device: never opened
        raise CheckpointError(f"the checkpoint {path} is not a regular file (a folder, pipe or device); give a .pt file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- any unpickling failure is a bad file
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a PyTorch checkpoint, damaged, or not allowed to load safely ({detail[:200]})"
        ) from error
    required = ("model_name", "classes", "input_size", "mean", "std", "epoch", "state_dict")
    if not isinstance(payload, dict) or any(key not in payload for key in required):
        raise CheckpointError(f"{path} is not a checkpoint of this app (a bare state_dict? use it as pretrained weights instead)")
    stored = payload.get(CONTENT_HASH)
    if stored is not None and stored != content_hash(payload):  # None: written before the hash
        raise CheckpointError(
            f"{path} is damaged: its contents do not match the hash stored when it was written "
            "(a bad disk or copy changed it); use a backup or an earlier checkpoint"
        )
    return _checked(payload, path)


def _checked(payload: Dict[str, Any], path: Path) -> Checkpoint:
    """The Checkpoint of a loaded payload; CheckpointError naming the first malformed field
    (a crafted file must never reach the model builder: input_size 200000 was a MemoryError)."""

    def bad(field_name: str, why: str) -> CheckpointError:
        return CheckpointError(f"{path} is damaged or not from this app: '{field_name}' {why}")

    if not isinstance(payload["model_name"], str) or payload["model_name"] not in MODEL_NAMES:
        raise bad("model_name", f"is {payload['model_name']!r}, not one of {', '.join(MODEL_NAMES)}")
    classes = payload["classes"]
    if not isinstance(classes, (list, tuple)) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise bad("classes", "must be a list of at least two class names")
    for name in ("input_size", "epoch"):
        value = payload[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(name, f"must be a whole number, got {value!r}"[:200])
    if not 16 <= payload["input_size"] <= MAX_INPUT_SIZE:
        raise bad("input_size", f"is {payload['input_size']}, outside 16..{MAX_INPUT_SIZE}")
    if payload["epoch"] < 0:
        raise bad("epoch", f"is {payload['epoch']}, negative")
    for name in ("mean", "std"):
        values = payload[name]
        if (
            not isinstance(values, (list, tuple))
            or len(values) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
            or (name == "std" and not all(v > 0 for v in values))
        ):
            raise bad(name, "must be three finite numbers" + (" above 0" if name == "std" else ""))
    state_dict = payload["state_dict"]
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise bad("state_dict", "must map parameter names to tensors")
    extras = {}
    for name, kind in (("train_config", Mapping), ("finetune_config", Mapping), ("metrics", Mapping), ("history", (list, tuple))):
        value = payload.get(name)
        if value is not None and not isinstance(value, kind):
            raise bad(name, f"has the wrong type ({type(value).__name__})")
        extras[name] = value
    _check_configs(extras["train_config"] or {}, extras["finetune_config"] or {}, bad)
    history = [record for record in (extras["history"] or []) if isinstance(record, Mapping)]
    optimizer_state = payload.get("optimizer_state")
    return Checkpoint(
        model_name=payload["model_name"],
        classes=list(classes),
        input_size=payload["input_size"],
        mean=tuple(float(v) for v in payload["mean"]),
        std=tuple(float(v) for v in payload["std"]),
        epoch=payload["epoch"],
        state_dict=dict(state_dict),
        train_config=dict(extras["train_config"] or {}),
        finetune_config=dict(extras["finetune_config"] or {}),
        metrics=dict(extras["metrics"] or {}),
        history=[dict(record) for record in history],
        optimizer_state=optimizer_state if isinstance(optimizer_state, Mapping) else None,
        path=str(path),
    )


def _check_configs(train_config: Mapping[str, Any], finetune_config: Mapping[str, Any], bad: Any) -> None:
    """Validate the stored configs as the command line's are validated (a string input size
    or seed, or an unknown guidance name, in a checkpoint was a TypeError, RuntimeError or
    KeyError deep in finetune). `bad(field, why)` makes the CheckpointError."""
    for name, config_type, values in (
        ("train_config", TrainConfig, train_config),
        ("finetune_config", FinetuneConfig, finetune_config),
    ):
        try:
            config_type.from_dict(values)
        except (UserError, TypeError, ValueError) as error:
            raise bad(name, f"holds a bad setting: {error}") from error
    guidance = train_config.get("guidance")
    if guidance is not None and guidance not in GUIDANCE_NAMES:
        raise bad("train_config", f"names the unknown guidance {guidance!r}, not one of {', '.join(GUIDANCE_NAMES)}")
    if "model" in train_config and train_config["model"] not in MODEL_NAMES:
        raise bad("train_config", f"names the unknown model {train_config['model']!r}")


def model_from_checkpoint(checkpoint: Checkpoint) -> nn.Module:
    """Rebuild the model of a checkpoint with its weights (on the CPU)."""
    from models import build_model

    problem = state_dict_problem(checkpoint.state_dict)
    if problem is not None:
        raise NonFiniteModelError(
            f"the weights in {checkpoint.path} are broken ({problem}): the run that wrote it diverged; use an earlier checkpoint"
        )
    model = build_model(checkpoint.model_name, len(checkpoint.classes))
    try:
        model.load_state_dict(checkpoint.state_dict)
    except (RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(
            f"the weights in {checkpoint.path} do not fit a '{checkpoint.model_name}' "
            f"model with {len(checkpoint.classes)} classes: {error}"
        ) from error
    return model
