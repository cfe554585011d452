"""What the settings form offers and checks, without widgets: the defaults a newcomer gets, the
choices of each menu, the Lambda field's hint, the fields' names in messages, the test folder's
rules, and what a valid form describes (`FormValues`) or why it is not (`FormError`).

Pure (no tkinter): `ui.main_window.settings_panel.SettingsPanel` builds the form from these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional

from app.engine.config import TrainConfig
from app.explain.locator_config import LOCATOR_SETTINGS
from app.explain.options import SALIENCY_METHODS, SELECTION_STRATEGIES
from datasets import DatasetError
from loss.options import GUIDANCE_NAMES
from models import MODEL_NAMES

__all__ = [
    "DEFAULT_CONFIG",
    "FIELD_LABELS",
    "NO_GUIDANCE",
    "FormError",
    "FormValues",
    "guidance_choices",
    "lambda_hint",
    "model_choices",
    "saliency_choices",
    "selection_choices",
    "test_folder_problem",
]

NO_GUIDANCE = "none"

# What a newcomer gets: small and quick on a laptop CPU, with two feedback rounds.
DEFAULT_CONFIG = TrainConfig(model="small_cnn", epochs=6, feedback_every=2, images_per_round=6, guidance="rrr", lr=1e-3)


def model_choices() -> tuple[str, ...]:
    return tuple(MODEL_NAMES)


def saliency_choices() -> tuple[str, ...]:
    return tuple(SALIENCY_METHODS)


def guidance_choices() -> tuple[str, ...]:
    return tuple(GUIDANCE_NAMES) + (NO_GUIDANCE,)


def lambda_hint(guidance: str) -> str:
    """The Lambda field's hint: what blank means for this guidance loss (`TrainConfig.round_lambda`,
    the one default-lambda rule)."""
    if guidance == NO_GUIDANCE:
        config = TrainConfig(guidance=None)
        return f"blank: {config.round_lambda():g} (rounds use {config.round_guidance})"
    if guidance in GUIDANCE_NAMES:
        return f"blank: {TrainConfig(guidance=guidance).round_lambda():g} ({guidance} default)"
    return "blank: the loss's default"


def selection_choices() -> tuple[str, ...]:
    return tuple(SELECTION_STRATEGIES)


class FormError(ValueError):
    """Some fields are invalid; `errors` maps field name -> message (also shown in the form)."""

    def __init__(self, errors: Dict[str, str]) -> None:
        self.errors = dict(errors)
        lines = [f"{FIELD_LABELS.get(k, k)}: {v}" for k, v in self.errors.items()]
        super().__init__("\n".join(lines))


FIELD_LABELS = {
    "train_dir": "Data folder",
    "val_dir": "Validation folder",
    "test_dir": "Test folder",
    "model": "Model",
    "weights_path": "Weights file",
    "saliency_method": "Saliency method",
    "guidance": "Guidance loss",
    "lam": "Lambda",
    "counterexamples": "Counterexamples",
    "oversample_annotated": "Masked images drawn",
    "epochs": "Epochs",
    "feedback_every": "Paint every N epochs",
    "images_per_round": "Images per round",
    "selection": "Choose images by",
    "lr": "Learning rate",
    **{setting.config_field: setting.label for setting in LOCATOR_SETTINGS},  # the content locator's
    "config": "Settings",
}


def test_folder_problem(test_dir: str, train_dir: Optional[str], val_dir: Optional[str]) -> str:
    """Why `test_dir` cannot be the test folder of a run on `train_dir` / `val_dir`, or ''.

    Checked from the folder names alone (no image is read), so a wrong folder is said before a
    long data scan: it must be another folder than the data and validation folders, and hold the
    data folder's class sub-folders, no more and no fewer. The demo (train_dir None) is not checked."""
    same = lambda other: other and os.path.realpath(test_dir) == os.path.realpath(other)  # noqa: E731
    if same(train_dir):
        return "must hold other images than the data folder"
    if same(val_dir):
        return "must differ from the validation folder (which carries the shortcut)"
    if not train_dir:
        return ""
    # Imported here: the folder scan loads torchvision, which the main window must not wait for.
    from datasets.folder_scan import class_folders, class_mismatch

    try:
        mismatch = class_mismatch(class_folders(train_dir, "data folder"), class_folders(test_dir, "test folder"))
    except DatasetError:
        return ""  # the data folder's own problem is said by the scan, in its words
    return f"needs the data folder's class folders: {mismatch}" if mismatch else ""


@dataclass(frozen=True)
class FormValues:
    """What the form describes: the folders and the training configuration."""

    train_dir: Optional[str]  # None: use the built-in demo data
    val_dir: Optional[str]
    config: TrainConfig
    # A shortcut-free test folder (the same classes), measured after every epoch; None: none
    # (the demo's own test split, when training on the demo).
    test_dir: Optional[str] = None
