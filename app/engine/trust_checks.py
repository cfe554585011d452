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


def trust_warnings(
    history: Sequence[Mapping[str, Any]], sizes: DataSizes, epochs_done: Optional[int] = None
) -> List[TrustWarning]:
    """The warnings that hold after the epochs in `history` (oldest first)."""
    records = [_flat(r) for r in history]
    classes = max(2, sizes.n_classes)
    chance = 1.0 / classes
    ln_c = math.log(classes)
    batchnorm = sizes.model in BATCHNORM_MODELS or not sizes.model
    done = epochs_done if epochs_done is not None else len(records)
    found: List[TrustWarning] = []
    last = records[-1] if records else None

    if last is not None:
        val_losses = [r["val_loss"] for r in records if math.isfinite(r["val_loss"])]
        loss = last["val_loss"]
        best = min(val_losses) if val_losses else math.nan
        if not math.isfinite(loss) and val_losses != []:
            found.append(
                TrustWarning(
                    "val_loss_exploding",
                    "Validation loss is not a number",
                    f"validation loss became {loss} at epoch {int(last['epoch'])}",
                    ("frozen_batchnorm", "pretrained", "smaller_model"),
                )
            )
        elif math.isfinite(loss) and loss > max(4 * ln_c, EXPLODING_FACTOR * best):
            found.append(
                TrustWarning(
                    "val_loss_exploding",
                    "Validation loss is exploding",
                    f"validation loss {loss:.3g} at epoch {int(last['epoch'])} (best {best:.3g}; "
                    f"a uniform guess scores {ln_c:.2f})",
                    ("frozen_batchnorm", "pretrained", "smaller_model"),
                )
            )

        train_acc, val_acc = last["train_accuracy"], last["val_accuracy"]
        if math.isfinite(train_acc) and math.isfinite(val_acc) and train_acc - val_acc >= GAP and val_acc <= chance + NEAR_CHANCE:
            found.append(
                TrustWarning(
                    "modes_disagree",
                    "Training and evaluation disagree",
                    f"training accuracy {_percent(train_acc)} (train mode) but validation "
                    f"{_percent(val_acc)} (eval mode; chance is {_percent(chance)})"
                    + (
                        ": BatchNorm's running statistics do not match the statistics of the training batches"
                        if batchnorm
                        else ""
                    ),
                    ("frozen_batchnorm", "pretrained", "smaller_model"),
                )
            )

        stuck = [
            r
            for r in records[-2:]
            if abs(r["val_loss"] - ln_c) <= 0.02 * ln_c
            and abs(r["val_accuracy"] - round(r["val_accuracy"] * classes) / classes) < 1e-3
            and r["val_accuracy"] <= chance + NEAR_CHANCE
        ]
        if len(records) >= 2 and len(stuck) == 2:
            found.append(
                TrustWarning(
                    "stuck_at_chance",
                    "The model has learnt nothing yet",
                    f"validation {_percent(val_acc)} with loss {last['val_loss']:.2f} (= ln "
                    f"{classes}, a uniform guess) for {len(stuck)} epochs",
                    ("pretrained", "smaller_model"),
                )
            )

        train_loss, train_ce = last["train_loss"], last["train_ce"]
        if math.isfinite(train_loss) and train_loss > GUIDANCE_DOMINATES * max(
            train_ce if math.isfinite(train_ce) else 0.0, ln_c
        ):
            found.append(  # --lam 1e30: a loss of 1.6e26 printed, validation at chance, no word
                TrustWarning(
                    "guidance_dominates",
                    "The guidance term swamps the classification loss",
                    f"training loss {train_loss:.3g} against a classification loss of {train_ce:.3g} (a uniform "
                    f"guess scores {ln_c:.2f}): the model is trained on its explanations, hardly on the labels",
                    ("lower_lambda",),
                )
            )

    steps = sizes.steps_per_epoch * done
    # Only a run with very few steps per epoch: any run has few steps after its first epoch.
    if batchnorm and done >= 1 and sizes.steps_per_epoch <= FEW_STEPS_PER_EPOCH and steps < SETTLED_STEPS:
        found.append(
            TrustWarning(
                "few_steps",
                "Too few steps for BatchNorm's statistics",
                f"{sizes.n_train} training images make {sizes.steps_per_epoch} "
                f"step{'s' if sizes.steps_per_epoch != 1 else ''} per epoch, {steps} so far: the "
                f"running statistics that evaluation uses have not settled (about "
                f"{SETTLED_STEPS} needed), so validation numbers and confidences may mean nothing",
                ("frozen_batchnorm", "pretrained", "smaller_model"),
            )
        )
    counts = [c for c in sizes.class_counts if c > 0] or ([sizes.n_train // classes] if sizes.n_train else [])
    if batchnorm and counts and min(counts) < MIN_IMAGES_PER_CLASS:
        found.append(
            TrustWarning(
                "few_images",
                "Few images per class",
                f"as few as {min(counts)} training images in a class: too few for reliable "
                "train-mode statistics and validation numbers",
                ("pretrained", "smaller_model", "frozen_batchnorm"),
            )
        )
    if sizes.model == "small_cnn":  # already the small model: do not offer it again
        found = [TrustWarning(w.code, w.title, w.detail, tuple(r for r in w.remedies if r != "smaller_model")) for w in found]
    return found
