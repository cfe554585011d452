"""Can the numbers on screen be trusted? Rules over the epoch history and the data's sizes.

A run on a small folder of one's own can show numbers that mean nothing: resnet18 on 144
training images (3 steps per epoch) reached 97 % training accuracy while validation fell
64 % -> 53 % -> 33 % (chance) with validation losses of 32-61, and the brush window said
"circles (98 %)" on a square; small_cnn on 32 images sat at exactly 50.0 % / 0.69 (= ln 2).
BatchNorm is the usual cause: in train mode it normalises with the batch's statistics, in eval
mode with running averages that a few dozen steps have not settled (momentum 0.1 keeps 0.9^n
of the initial values after n steps), so train and eval mode disagree.

`trust_warnings(history, sizes)` returns the `TrustWarning`s that hold now, most serious
first; each says what was seen and offers what practitioners do (`REMEDIES`): pretrained
weights from a local file, frozen BatchNorm, a smaller model. Pure: no torch, no tkinter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

# What the warnings offer; the UI turns the keys into buttons or hints.
REMEDIES: Dict[str, str] = {
    "pretrained": "start from pretrained weights (a local .pth file, e.g. torchvision's "
    "ImageNet weights: Weights file in the settings)",
    "frozen_batchnorm": "freeze BatchNorm (keep its statistics fixed), or train with larger "
    "batches / more images so its running statistics settle",
    "smaller_model": "a smaller model (small_cnn), which needs far fewer images",
    "lower_lambda": "a smaller guidance weight (lambda, --lam), so that classifying still counts",
}

BATCHNORM_MODELS = ("small_cnn", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0")
SETTLED_STEPS = 20  # BatchNorm running statistics keep 0.9^20 = 12 % of their start after this
FEW_STEPS_PER_EPOCH = 5  # at most this many steps per epoch: the statistics settle slowly
MIN_IMAGES_PER_CLASS = 20  # fewer training images in a class: train-mode statistics are noise
EXPLODING_FACTOR = 3.0  # val loss above this x the best so far (and 4 x ln C) is exploding
GAP = 0.4  # train accuracy this far above a validation accuracy near chance: modes disagree
NEAR_CHANCE = 0.15  # validation accuracy within this of chance counts as chance
GUIDANCE_DOMINATES = 100.0  # training loss this many times its classification part (or ln C): lambda swamps it


@dataclass(frozen=True)
class DataSizes:
    """What the rules need to know about the run's data and model."""

    n_train: int  # training images
    n_val: int  # validation images
    n_classes: int
    batch_size: int
    model: str = ""  # model name (BatchNorm models get the statistics rules)
    class_counts: Tuple[int, ...] = ()  # training images per class, when known

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.n_train / max(1, self.batch_size)))


@dataclass(frozen=True)
class TrustWarning:
    code: str  # "val_loss_exploding" | "modes_disagree" | "stuck_at_chance" | "guidance_dominates" | "few_steps" | "few_images"
    title: str  # one line for a banner
    detail: str  # the numbers behind it
    remedies: Tuple[str, ...]  # keys of REMEDIES, in the order worth trying

    @property
    def advice(self) -> str:
        return "Try: " + "; ".join(REMEDIES[key] for key in self.remedies) + "."


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _flat(record: Mapping[str, Any]) -> Dict[str, float]:
    """A checkpoint record (`train_accuracy`, `val_loss`, ...) or nested `train`/`val` dicts."""
    if "train" in record or "val" in record:
        train, val = record.get("train") or {}, record.get("val") or {}
        return {
            "epoch": _number(record.get("epoch")),
            "train_accuracy": _number(train.get("accuracy")),
            "train_loss": _number(train.get("loss")),
            "train_ce": _number(train.get("ce")),
            "val_loss": _number(val.get("loss")),
            "val_accuracy": _number(val.get("accuracy")),
        }
    keys = ("epoch", "train_accuracy", "train_loss", "train_ce", "val_loss", "val_accuracy")
    return {key: _number(record.get(key)) for key in keys}


def _percent(value: float) -> str:
    return f"{value:.0%}"


@dataclass(frozen=True)
class _Facts:
    """What every rule reads: the history as flat records and the run's constants."""

    records: List[Dict[str, float]]  # oldest first (`_flat`)
    sizes: DataSizes
    classes: int  # at least 2
    chance: float  # 1 / classes
    ln_c: float  # the loss of a uniform guess
    batchnorm: bool  # the model has BatchNorm (or is unknown)
    done: int  # epochs done


_BATCHNORM_REMEDIES = ("frozen_batchnorm", "pretrained", "smaller_model")


def _exploding(facts: _Facts) -> List[TrustWarning]:
    """The last validation loss is not a number, or far above the best and a uniform guess's."""
    records, last = facts.records, facts.records[-1]
    val_losses = [r["val_loss"] for r in records if math.isfinite(r["val_loss"])]
    loss = last["val_loss"]
    best = min(val_losses) if val_losses else math.nan
    if not math.isfinite(loss) and val_losses != []:
        detail = f"validation loss became {loss} at epoch {int(last['epoch'])}"
        return [TrustWarning("val_loss_exploding", "Validation loss is not a number", detail, _BATCHNORM_REMEDIES)]
    if math.isfinite(loss) and loss > max(4 * facts.ln_c, EXPLODING_FACTOR * best):
        detail = (
            f"validation loss {loss:.3g} at epoch {int(last['epoch'])} (best {best:.3g}; a uniform guess scores {facts.ln_c:.2f})"
        )
        return [TrustWarning("val_loss_exploding", "Validation loss is exploding", detail, _BATCHNORM_REMEDIES)]
    return []


def _modes_disagree(facts: _Facts) -> List[TrustWarning]:
    """Training accuracy (train mode) far above a validation accuracy (eval mode) near chance."""
    last = facts.records[-1]
    train_acc, val_acc = last["train_accuracy"], last["val_accuracy"]
    if not (math.isfinite(train_acc) and math.isfinite(val_acc)):
        return []
    if train_acc - val_acc < GAP or val_acc > facts.chance + NEAR_CHANCE:
        return []
    detail = (
        f"training accuracy {_percent(train_acc)} (train mode) but validation "
        f"{_percent(val_acc)} (eval mode; chance is {_percent(facts.chance)})"
        + (": BatchNorm's running statistics do not match the statistics of the training batches" if facts.batchnorm else "")
    )
    return [TrustWarning("modes_disagree", "Training and evaluation disagree", detail, _BATCHNORM_REMEDIES)]


def _stuck_at_chance(facts: _Facts) -> List[TrustWarning]:
    """The last two epochs' validation sat at a uniform guess: loss ln C, accuracy a multiple of 1/C."""
    records, classes, ln_c = facts.records, facts.classes, facts.ln_c
    stuck = [
        r
        for r in records[-2:]
        if abs(r["val_loss"] - ln_c) <= 0.02 * ln_c
        and abs(r["val_accuracy"] - round(r["val_accuracy"] * classes) / classes) < 1e-3
        and r["val_accuracy"] <= facts.chance + NEAR_CHANCE
    ]
    if len(records) < 2 or len(stuck) != 2:
        return []
    last = records[-1]
    detail = (
        f"validation {_percent(last['val_accuracy'])} with loss {last['val_loss']:.2f} (= ln "
        f"{classes}, a uniform guess) for {len(stuck)} epochs"
    )
    return [TrustWarning("stuck_at_chance", "The model has learnt nothing yet", detail, ("pretrained", "smaller_model"))]


def _guidance_dominates(facts: _Facts) -> List[TrustWarning]:
    """The training loss is many times its classification part: --lam 1e30 printed a loss of
    1.6e26 with validation at chance, and no word."""
    last, ln_c = facts.records[-1], facts.ln_c
    train_loss, train_ce = last["train_loss"], last["train_ce"]
    classification = max(train_ce if math.isfinite(train_ce) else 0.0, ln_c)
    if not (math.isfinite(train_loss) and train_loss > GUIDANCE_DOMINATES * classification):
        return []
    detail = (
        f"training loss {train_loss:.3g} against a classification loss of {train_ce:.3g} (a uniform "
        f"guess scores {ln_c:.2f}): the model is trained on its explanations, hardly on the labels"
    )
    return [TrustWarning("guidance_dominates", "The guidance term swamps the classification loss", detail, ("lower_lambda",))]


def _few_steps(facts: _Facts) -> List[TrustWarning]:
    """BatchNorm's running statistics cannot have settled: very few steps per epoch, few in all.
    (Only a run with very few steps per epoch: any run has few steps after its first epoch.)"""
    sizes, done = facts.sizes, facts.done
    steps = sizes.steps_per_epoch * done
    if not (facts.batchnorm and done >= 1 and sizes.steps_per_epoch <= FEW_STEPS_PER_EPOCH and steps < SETTLED_STEPS):
        return []
    detail = (
        f"{sizes.n_train} training images make {sizes.steps_per_epoch} "
        f"step{'s' if sizes.steps_per_epoch != 1 else ''} per epoch, {steps} so far: the "
        f"running statistics that evaluation uses have not settled (about "
        f"{SETTLED_STEPS} needed), so validation numbers and confidences may mean nothing"
    )
    return [TrustWarning("few_steps", "Too few steps for BatchNorm's statistics", detail, _BATCHNORM_REMEDIES)]


def _few_images(facts: _Facts) -> List[TrustWarning]:
    """A class with fewer than MIN_IMAGES_PER_CLASS training images (a BatchNorm model)."""
    sizes = facts.sizes
    counts = [c for c in sizes.class_counts if c > 0] or ([sizes.n_train // facts.classes] if sizes.n_train else [])
    if not (facts.batchnorm and counts and min(counts) < MIN_IMAGES_PER_CLASS):
        return []
    detail = (
        f"as few as {min(counts)} training images in a class: too few for reliable train-mode statistics and validation numbers"
    )
    return [TrustWarning("few_images", "Few images per class", detail, ("pretrained", "smaller_model", "frozen_batchnorm"))]


# The rules over the last epochs, then those over the data's sizes: the order of the banner.
_HISTORY_RULES = (_exploding, _modes_disagree, _stuck_at_chance, _guidance_dominates)
_SIZE_RULES = (_few_steps, _few_images)


def trust_warnings(
    history: Sequence[Mapping[str, Any]], sizes: DataSizes, epochs_done: Optional[int] = None
) -> List[TrustWarning]:
    """The warnings that hold after the epochs in `history` (oldest first)."""
    records = [_flat(r) for r in history]
    classes = max(2, sizes.n_classes)
    facts = _Facts(
        records=records,
        sizes=sizes,
        classes=classes,
        chance=1.0 / classes,
        ln_c=math.log(classes),
        batchnorm=sizes.model in BATCHNORM_MODELS or not sizes.model,
        done=epochs_done if epochs_done is not None else len(records),
    )
    rules = (_HISTORY_RULES if records else ()) + _SIZE_RULES
    found = [warning for rule in rules for warning in rule(facts)]
    if sizes.model == "small_cnn":  # already the small model: do not offer it again
        found = [TrustWarning(w.code, w.title, w.detail, tuple(r for r in w.remedies if r != "smaller_model")) for w in found]
    return found
