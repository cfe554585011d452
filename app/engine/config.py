"""Settings of a training run and of a fine-tune round, as frozen dataclasses.

The desktop app and the command line build the same two objects; a checkpoint stores them
(`dataclasses.asdict`) so a run describes itself.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from app.errors import UserError
from app.explain.locator_config import LocatorConfig, check_locator_settings, locator_config_from
from app.explain.options import DEFAULT_SALIENCY_METHOD
from loss.options import DEFAULT_LAMBDAS, DEFAULT_PENALTY_GRADIENT, PENALTY_GRADIENTS

MAX_INPUT_SIZE = 2048  # largest square input side accepted: beyond it memory runs out, not training
MAX_WORKERS = 64  # DataLoader worker processes


# A fine-tune round needs a guidance loss even when training used none (guidance=None).
ROUND_GUIDANCE_WHEN_UNGUIDED = "rrr"

MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit; a bigger --seed overflowed deep in a trainer
AMP_MODES = ("off", "bf16", "fp16")  # TrainConfig.amp (app.engine.amp acts on it; here torch-free)


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_KINDS = {"int": (numbers.Integral,), "float": (numbers.Real,), "str": (str,), "bool": (bool,)}
_KIND_WORDS = {"int": "a whole number", "float": "a number", "str": "text", "bool": "true or false"}


def check_field_types(config: Any) -> None:
    """UserError naming the first field whose value is not of its declared type (`int`,
    `float`, `str`, `bool`, optionally `Optional[...]`). Configs also come from checkpoints and
    session files a user can edit: a string input size or seed got as far as a TypeError in
    the trainer."""
    for spec in dataclasses.fields(config):
        declared = str(spec.type)
        optional = declared.startswith("Optional[")
        kind = declared[len("Optional[") : -1] if optional else declared
        if kind not in _KINDS:
            continue
        value = getattr(config, spec.name)
        if value is None and optional:
            continue
        if isinstance(value, bool) and kind != "bool" or not isinstance(value, _KINDS[kind]):
            raise UserError(f"{spec.name} must be {_KIND_WORDS[kind]}{' or empty' if optional else ''}, got {value!r}"[:300])


@dataclass(frozen=True)
class TrainConfig:
    model: str = "small_cnn"  # a name from models.MODEL_NAMES
    epochs: int = 10  # epochs to train (counted from the checkpoint's epoch when resuming)
    batch_size: int = 64  # images per optimiser step
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 0.0  # Adam L2 penalty on the weights
    guidance: Optional[str] = "rrr"  # guidance loss on annotated images: punisher | rrr | gradcam | None
    lam: Optional[float] = None  # weight of the guidance term; None = the loss's default
    counterexamples: bool = True  # swap annotated images' red pixels with other images' (loss.counterexamples)
    oversample_annotated: float = (
        10.0  # a masked image is drawn this many times as often as another (app.engine.oversampling; 1 = uniform)
    )
    seed: int = 0  # seeds weights, shuffling and the train/val split
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N | mps
    num_workers: int = 0  # DataLoader worker processes (0 = load in the training thread)
    input_size: Optional[int] = None  # square model input side in pixels; None = the model's default
    val_fraction: float = 0.2  # share of the training folder held out when no val folder is given
    weights_path: Optional[str] = None  # local file with pretrained weights for the backbone
    feedback_every: int = 0  # pause for painting every N epochs (0 = never; the CLI never pauses)
    images_per_round: int = 8  # images shown in the brush window per round
    selection: str = "random"  # how those images are chosen (app.explain.selection.SELECTION_STRATEGIES)
    saliency_method: str = DEFAULT_SALIENCY_METHOD  # method for display (SALIENCY_METHODS; docs/saliency_methods.md)
    amp: str = "off"  # mixed precision of training steps: off | bf16 | fp16 (app.engine.amp)
    cache_images_gb: float = 0.0  # keep decoded, resized images in RAM up to this many GB (0 = decode every epoch)
    # When masks start to guide a trained model (train --init with masks, every fine-tune round),
    # its classifier head is scaled by this first: same predictions, a penalty that starts
    # head_scale^2 smaller (models.classifier_head says why; 1 = off).
    head_scale: float = 0.1
    penalty_gradient: str = DEFAULT_PENALTY_GRADIENT  # exact (double backward) | finite_difference (loss.finite_difference)
    # The content locator's settings a user may change, each LocatorConfig's field of the same name
    # after "locator_" (app.explain.locator_config.LOCATOR_SETTINGS: ranges, --locator-* options, form rows).
    locator_rim: float = LocatorConfig.rim  # painted rim not learnt as content, px at 32 px
    locator_weak_find_mass: float = LocatorConfig.weak_find_mass  # weak side-finds dropped below this mass share
    locator_recall_beta: float = LocatorConfig.recall_beta  # beta of the threshold's F-beta

    def __post_init__(self) -> None:
        check_field_types(self)
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        for name, value in positive.items():
            if not (_finite_number(value) and value > 0):
                raise UserError(f"{name} must be a positive number, got {value}")
        if not (_finite_number(self.oversample_annotated) and self.oversample_annotated >= 1.0):
            raise UserError(f"oversample_annotated must be at least 1 (a finite number), got {self.oversample_annotated}")
        if self.lam is not None and not (_finite_number(self.lam) and self.lam >= 0):
            raise UserError(f"lambda must be a finite number >= 0, got {self.lam}")
        if not (_finite_number(self.weight_decay) and self.weight_decay >= 0):
            raise UserError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if not 0 <= self.num_workers <= MAX_WORKERS:
            raise UserError(f"workers must be between 0 and {MAX_WORKERS}, got {self.num_workers}")
        if not (_finite_number(self.val_fraction) and 0.0 < self.val_fraction < 1.0):
            raise UserError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if self.feedback_every < 0 or self.images_per_round < 1:
            raise UserError("feedback_every must be >= 0 and images_per_round >= 1")
        if not (_finite_number(self.head_scale) and 0.0 < self.head_scale <= 1.0):
            raise UserError(f"head_scale must be in (0, 1], got {self.head_scale}")
        if self.penalty_gradient not in PENALTY_GRADIENTS:
            raise UserError(f"penalty_gradient must be one of {', '.join(PENALTY_GRADIENTS)}, got {self.penalty_gradient!r}")
        if self.input_size is not None and not 16 <= self.input_size <= MAX_INPUT_SIZE:
            raise UserError(f"input_size must be between 16 and {MAX_INPUT_SIZE} pixels, got {self.input_size}")
        if not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"seed must be between 0 and {MAX_SEED}, got {self.seed}")
        if not (_finite_number(self.cache_images_gb) and self.cache_images_gb >= 0):
            raise UserError(f"cache_images_gb (--cache-images) must be a finite number >= 0, got {self.cache_images_gb}")
        check_locator_settings(self)

    @property
    def round_guidance(self) -> str:
        """The guidance loss of this run's fine-tune rounds: its own, ROUND_GUIDANCE_WHEN_UNGUIDED
        when it trains without one."""
        return self.guidance or ROUND_GUIDANCE_WHEN_UNGUIDED

    def round_lambda(self, guidance: Optional[str] = None) -> float:
        """The one default-lambda rule (the trainer, `finetune` and the settings form's blank
        Lambda): the weight of a round with `guidance` (None: `round_guidance`) is `lam` when it
        was set for that loss, else the loss's default (`loss.DEFAULT_LAMBDAS`)."""
        guidance = guidance or self.round_guidance
        if self.lam is not None and guidance == self.round_guidance:
            return self.lam
        return DEFAULT_LAMBDAS[guidance]

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def locator_config(self) -> LocatorConfig:
        """The content locator's settings for this run (its `locator_*` fields over the defaults)."""
        return locator_config_from(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build from a stored dict, ignoring keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


STOP_RULES = ("plateau", "saliency", "thesis")  # FinetuneConfig.stop_rule


@dataclass(frozen=True)
class FinetuneConfig:
    # Adam learning rate of the fine-tune round: the epochs' own (1e-4 kept no step better than the
    # round's start on 10 zoo draws, so the round was a no-op; the plateau rule keeps the best state).
    lr: float = 1e-3
    max_steps: int = 150  # hard cap on optimiser steps
    check_every: int = 5  # evaluate the stop criteria every N steps
    val_loss_rise: float = 1.2  # stop when val loss >= this x the val loss before the round
    guidance_drop: float = 0.5  # stop when guidance <= L0 - this x |L0| (L0 = before the round)
    replay_batch: int = 32  # training images mixed into each step's CE so the model does not forget
    counterexamples: bool = True  # swap annotated images' red pixels with replayed images' (loss.counterexamples)
    max_val_images: Optional[int] = 2000  # cap on validation images used by the stop check
    # "plateau" (default): run while accuracy on the shortcut-broken validation keeps rising; stop
    # after `patience` checks without a new best, when its loss rises val_loss_rise x over the
    # round's start (forgetting), or at max_steps; the candidate is the best state seen. Without
    # a shortcut-broken validation it acts as "saliency". "saliency": stop when the share of
    # saliency on red (as the chooser measures it) has fallen by red_share_drop, or when accuracy
    # on the shortcut-broken validation falls by more than broken_accuracy_drop. "thesis": the
    # thesis' criteria (guidance_drop, val_loss_rise on the plain validation), which can stop a
    # round whose red share went up.
    stop_rule: str = "plateau"
    patience: int = 8  # "plateau": checks without a new best shortcut-broken accuracy before stopping
    red_share_drop: float = 0.5  # "saliency": stop when red share <= (1 - this) x before
    broken_accuracy_drop: float = 0.02  # "saliency": stop when shortcut-broken accuracy falls more than this

    def __post_init__(self) -> None:
        check_field_types(self)
        if not (_finite_number(self.lr) and self.lr > 0):
            raise UserError(f"the fine-tune learning rate must be a positive number, got {self.lr}")
        if self.patience < 1:
            raise UserError(f"patience must be at least 1 check, got {self.patience}")
        if self.max_steps < 1 or self.check_every < 1 or self.replay_batch < 0:
            raise UserError(f"max_steps and check_every must be >= 1, got {self.max_steps} and {self.check_every}")
        if self.stop_rule not in STOP_RULES:
            raise UserError(f"unknown stop rule {self.stop_rule!r}; choose one of {', '.join(STOP_RULES)}")
        if not 0.0 < self.red_share_drop <= 1.0:
            raise UserError(f"red_share_drop must be in (0, 1], got {self.red_share_drop}")
        if not 0.0 <= self.broken_accuracy_drop <= 1.0:
            raise UserError(f"broken_accuracy_drop must be in [0, 1], got {self.broken_accuracy_drop}")
        if not (_finite_number(self.val_loss_rise) and self.val_loss_rise > 1.0):
            raise UserError(f"val_loss_rise must be a finite number > 1, got {self.val_loss_rise}")
        if not (_finite_number(self.guidance_drop) and 0.0 < self.guidance_drop <= 1.0):
            raise UserError(f"guidance_drop must be in (0, 1], got {self.guidance_drop}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "FinetuneConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class RunPaths:
    train_dir: str  # image folder root/<class>/<image>
    val_dir: Optional[str] = None  # separate validation folder; None = a stratified split of train_dir
    masks_dir: Optional[str] = None  # painted masks, <masks_dir>/<relpath>.png
    init_checkpoint: Optional[str] = None  # start from this checkpoint's weights
    checkpoint_out: Optional[str] = None  # written after every epoch and every committed round
    resume: bool = False  # True: init_checkpoint is this run's own; train up to `epochs` in total
    test_dir: Optional[str] = None  # optional shortcut-free test folder, evaluated after every epoch
    negatives_dir: Optional[str] = None  # "not this" corrections of content propagation (red = wrongly found)
