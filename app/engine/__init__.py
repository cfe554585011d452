"""The engine that trains and fine-tunes: configs, the guided training step (single process or
DistributedDataParallel, float32 or mixed precision), epoch loops, fine-tune rounds and their
reports, checkpoints, finite-weight guards, trust checks. Imports `app.explain` and below."""

from app.engine.amp import AMP_MODES, AmpPolicy
from app.engine.batchnorm_recalibration import recalibrate_batchnorm
from app.engine.checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from app.engine.config import FinetuneConfig, RunPaths, TrainConfig
from app.engine.distributed import SINGLE_PROCESS, DistributedContext, process_group
from app.engine.finetune import FinetuneResult, commit_candidate, finetune_round
from app.engine.finetune_report import FinetuneReport
from app.engine.finite_guard import NonFiniteModelError
from app.engine.guided_step import StepOutcome, TrainingStep
from app.engine.loops import TrainingDiverged, evaluate, train_one_epoch
from app.engine.rank_sampler import RankShareSampler
from app.engine.trust_checks import DataSizes, TrustWarning, trust_warnings

__all__ = [
    "AMP_MODES",
    "AmpPolicy",
    "Checkpoint",
    "DataSizes",
    "DistributedContext",
    "FinetuneConfig",
    "FinetuneReport",
    "FinetuneResult",
    "NonFiniteModelError",
    "RankShareSampler",
    "RunPaths",
    "SINGLE_PROCESS",
    "StepOutcome",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingStep",
    "TrustWarning",
    "commit_candidate",
    "evaluate",
    "finetune_round",
    "load_checkpoint",
    "model_from_checkpoint",
    "process_group",
    "recalibrate_batchnorm",
    "save_checkpoint",
    "train_one_epoch",
    "trust_warnings",
]
