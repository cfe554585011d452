"""The engine that trains and fine-tunes: configs, the guided training step (single process or
DistributedDataParallel, float32 or mixed precision), epoch loops, fine-tune rounds and their
reports, checkpoints, finite-weight guards, trust checks. Imports `app.explain` and below.

The names below are loaded on first use (PEP 562): `from app.engine import TrainConfig` reads the
torch-free `config`, `from app.engine import finetune_round` imports torch with `finetune`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOME = {
    "AMP_MODES": "config",
    "AmpPolicy": "amp",
    "Checkpoint": "checkpoint",
    "DataSizes": "trust_checks",
    "DistributedContext": "distributed",
    "FinetuneConfig": "config",
    "FinetuneReport": "finetune_report",
    "FinetuneResult": "finetune",
    "NonFiniteModelError": "finite_guard",
    "RankShareSampler": "rank_sampler",
    "RunPaths": "config",
    "SINGLE_PROCESS": "distributed",
    "StepOutcome": "guided_step",
    "TrainConfig": "config",
    "TrainingDiverged": "loops",
    "TrainingStep": "guided_step",
    "TrustWarning": "trust_checks",
    "commit_candidate": "finetune",
    "evaluate": "loops",
    "finetune_round": "finetune",
    "load_checkpoint": "checkpoint",
    "model_from_checkpoint": "checkpoint",
    "process_group": "distributed",
    "recalibrate_batchnorm": "batchnorm_recalibration",
    "save_checkpoint": "checkpoint",
    "train_one_epoch": "loops",
    "trust_warnings": "trust_checks",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """The public `name`, imported from its module on first use and kept."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
