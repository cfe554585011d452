"""The engine: training, fine-tune rounds, checkpoints, sessions. No tkinter here."""

from .amp import AMP_MODES, AmpPolicy
from .batchnorm_recalibration import recalibrate_batchnorm
from .checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from .config import FinetuneConfig, RunPaths, TrainConfig
from .distributed import SINGLE_PROCESS, DistributedContext, process_group
from .errors import CheckpointError, UserError
from .finetune import FinetuneResult, commit_candidate, finetune_round
from .finetune_report import FinetuneReport
from .finite_guard import NonFiniteModelError
from .guided_step import StepOutcome, TrainingStep
from .loops import TrainingDiverged, evaluate, train_one_epoch
from .propagation import SCOPES, PropagationPlan, apply_propagation, plan_propagation, propagate
from .rank_sampler import RankShareSampler
from .run_lock import FolderLock, FolderLockedError, acquire_folder_lock, acquire_session_lock
from .reasonability import ReasonabilityMatrix, reasonability_matrix
from .selection import SELECTION_STRATEGIES, Choice, select_images
from .session import Session, default_sessions_root, new_session_folder
from .trainer import Trainer
from .trust_checks import DataSizes, TrustWarning, trust_warnings

__all__ = [
    "AMP_MODES", "AmpPolicy", "DistributedContext", "RankShareSampler", "SINGLE_PROCESS", "StepOutcome",
    "TrainingStep", "process_group",
    "SCOPES", "SELECTION_STRATEGIES", "Choice", "PropagationPlan", "ReasonabilityMatrix",
    "apply_propagation", "plan_propagation", "propagate", "reasonability_matrix", "select_images",
    "Checkpoint", "CheckpointError", "FinetuneConfig", "FinetuneReport", "FinetuneResult",
    "RunPaths", "Session", "TrainConfig", "Trainer", "TrainingDiverged", "UserError",
    "commit_candidate", "default_sessions_root", "evaluate", "finetune_round",
    "load_checkpoint", "model_from_checkpoint", "new_session_folder", "save_checkpoint",
    "train_one_epoch", "DataSizes", "TrustWarning", "trust_warnings",
    "FolderLock", "FolderLockedError", "NonFiniteModelError", "acquire_folder_lock",
    "acquire_session_lock", "recalibrate_batchnorm",
]
