"""The models the app can build and the input each one expects (size, normalisation)."""

from __future__ import annotations

from dataclasses import dataclass

MODEL_NAMES = ("small_cnn", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0")

# torchvision's ImageNet statistics: its pretrained weights expect inputs normalised with these.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UnknownModelError(ValueError):
    """A model name that is not one of `MODEL_NAMES`."""


@dataclass(frozen=True)
class ModelSpec:
    """What a model expects of its input images."""

    name: str  # one of MODEL_NAMES
    input_size: int  # images are resized to input_size x input_size
    mean: tuple[float, float, float]  # per-channel mean subtracted after scaling to [0, 1]
    std: tuple[float, float, float]  # per-channel std divided by after subtracting the mean


def check_model_name(name: str) -> str:
    """Return `name` if it is a known model, else raise `UnknownModelError` listing them."""
    if name not in MODEL_NAMES:
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return name


def model_spec(name: str) -> ModelSpec:
    """The input size and normalisation of the model called `name`.

    `small_cnn` works on 32 x 32 images normalised to [-1, 1]; the torchvision models on
    224 x 224 images with ImageNet statistics, so local ImageNet weights fit them.
    """
    check_model_name(name)
    if name == "small_cnn":
        return ModelSpec(name, 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return ModelSpec(name, 224, IMAGENET_MEAN, IMAGENET_STD)
