"""Settings of the content locator, and the few a user may change, in one torch-free place.

`LocatorConfig` holds every setting (the defaults are not tuned to any one data set;
docs/content_locator.md says how the rim, the weak-find rule and the threshold rule were chosen).
`LOCATOR_SETTINGS` names the ones a user can reach: `TrainConfig`'s `locator_*` fields, the
`--locator-*` options of `train`, `finetune`, `propagate` and `select`, and the settings form all
read this table, and `locator_config_from` turns any of them into a `LocatorConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Tuple

from app.errors import UserError


@dataclass(frozen=True)
class LocatorConfig:
    """Settings of `app.explain.content_locator.ContentLocator`."""

    work_side: int = 112  # features and predictions at min(image side, this) pixels
    sigmas: Tuple[float, ...] = (1.0, 2.0, 4.0)  # filter scales at the working resolution
    surround_sigma: float = 8.0  # the wide surround a region's contrast is measured against
    hidden: int = 32  # width of the per-pixel perceptron
    steps: int = 300  # full-batch Adam steps to train it
    lr: float = 0.01  # Adam learning rate of the perceptron
    weight_decay: float = 1e-3  # Adam weight decay of the perceptron
    max_pixels_per_class: int = 20000  # labelled pixels sampled per class (content / not)
    margin: float = 1.5  # brush margin, in pixels at 32 px (scaled with the working side)
    # The painted red's outer rim, in pixels at 32 px: where a brush overshoots the thing, so
    # neither content nor "not" is learnt there (a red region too thin to keep a core is used whole).
    rim: float = 1.0
    green_weight: float = 3.0  # a green pixel counts this many times as a plain "not" pixel
    correction_share: float = 0.5  # "not this" corrections' share of the "not" class's weight
    # Copies of each painted image with random brightness/contrast per channel: the painted thing
    # may carry another colour or shade in other images, so its look relative to its surround
    # must count more than its absolute colour.
    jitter_copies: int = 8
    jitter_range: Tuple[float, float] = (0.3, 1.7)  # contrast factor per channel, uniform
    jitter_shift: float = 0.3  # brightness shift per channel, uniform in +-this
    recall_beta: float = 2.0  # the threshold maximises F-beta on held-out recolourings (recall weighs beta^2)
    max_threshold: float = 0.5  # the calibrated probability threshold never exceeds this
    area_range: Tuple[float, float] = (0.2, 5.0)  # a found region's area / the painted regions' (min, max)
    # A weak side-find is dropped: a region whose probability mass (the sum of its probabilities)
    # is below this share of the image's strongest region's AND whose mean probability is below
    # that region's (0 keeps every region).
    weak_find_mass: float = 0.5
    batch_images: int = 128  # images per feature batch
    seed: int = 0  # seeds the recolourings, the pixel samples and the perceptron's weights

    def __post_init__(self) -> None:
        if self.jitter_copies < 0:  # 0 is allowed: no recoloured copies
            raise ValueError(f"jitter_copies must be at least 0, got {self.jitter_copies}")


@dataclass(frozen=True)
class LocatorSetting:
    """One `LocatorConfig` field a user may set, with its wording and its allowed range."""

    field: str  # the LocatorConfig field; TrainConfig's is "locator_" + field
    option: str  # the command-line option
    label: str  # the settings form's label
    hint: str  # one line of help (form hint, --help)
    low: float  # smallest allowed value
    high: float  # largest allowed value
    low_open: bool = False  # True: `low` itself is not allowed

    @property
    def default(self) -> float:
        return getattr(LocatorConfig(), self.field)

    @property
    def config_field(self) -> str:
        """The field's name in `app.engine.config.TrainConfig`."""
        return "locator_" + self.field

    def problem(self, value: Any) -> str:
        """'' when `value` is allowed, else what is wrong with it."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if value < self.low or (self.low_open and value == self.low) or value > self.high:
            low = f"above {self.low:g}" if self.low_open else f"at least {self.low:g}"
            return f"must be {low} and at most {self.high:g}, got {value:g}"
        return ""


LOCATOR_SETTINGS: Tuple[LocatorSetting, ...] = (
    LocatorSetting(
        "rim",
        "--locator-rim",
        "Locator rim",
        "painted edge not learnt, px at 32 px",
        0.0,
        8.0,
    ),
    LocatorSetting(
        "weak_find_mass",
        "--locator-weak-find",
        "Locator weak finds",
        "dropped below x best find (0: keep)",
        0.0,
        1.0,
    ),
    LocatorSetting(
        "recall_beta",
        "--locator-recall-beta",
        "Locator recall",
        "threshold's F-beta (higher: finds more)",
        0.0,
        10.0,
        low_open=True,
    ),
)


def check_locator_settings(settings: Any) -> None:
    """UserError naming the first `locator_*` attribute of `settings` (a TrainConfig, or the
    command line's namespace) whose value is out of its range; a missing or None one is not set."""
    for setting in LOCATOR_SETTINGS:
        value = getattr(settings, setting.config_field, None)
        problem = setting.problem(value) if value is not None else ""
        if problem:
            raise UserError(f"{setting.config_field} ({setting.option}) {problem}")


def locator_config_from(settings: Any, base: LocatorConfig = LocatorConfig()) -> LocatorConfig:
    """`base` with the user's settings: each `locator_<field>` attribute of `settings` (a
    TrainConfig, or the command line's namespace); a missing or None attribute keeps `base`'s."""
    changes = {}
    for setting in LOCATOR_SETTINGS:
        value = getattr(settings, setting.config_field, None)
        if value is not None:
            changes[setting.field] = float(value)
    return replace(base, **changes) if changes else base
