"""Tests for models/: specs, the factory (heads, local weights, double-backprop safety),
the Grad-CAM layer."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
import torchvision
from captum.attr import DeepLift
from torch import nn

from models import (
    MODEL_NAMES,
    SmallCNN,
    UnknownModelError,
    WeightsError,
    build_model,
    gradcam_layer,
    load_matching_weights,
    model_spec,
)

# The torchvision models pool adaptively, so a 64 x 64 input keeps CPU time low.
TEST_SIZE = {"small_cnn": 32, "resnet18": 64, "resnet50": 64, "mobilenet_v3_small": 64, "efficientnet_b0": 64}


def head_of(model: nn.Module) -> nn.Linear:
    if isinstance(model, SmallCNN):
        return model.classifier
    if isinstance(model, torchvision.models.ResNet):
        return model.fc
    return model.classifier[-1]


def test_model_spec_sizes_and_normalisation():
    small = model_spec("small_cnn")
    assert (small.input_size, small.mean, small.std) == (32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    for name in MODEL_NAMES[1:]:
        spec = model_spec(name)
        assert spec.name == name
        assert (spec.input_size, spec.mean, spec.std) == (224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_unknown_model_name_lists_the_valid_ones():
    for call in (lambda: model_spec("vgg16"), lambda: build_model("vgg16", 3)):
        with pytest.raises(UnknownModelError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert "vgg16" in str(info.value)
        assert all(name in str(info.value) for name in MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape_head_and_double_backprop(name):
    model = build_model(name, num_classes=3).eval()
    assert head_of(model).out_features == 3
    # Nothing in place, and no activation without a second derivative.
    assert not [m for m in model.modules() if getattr(m, "inplace", False)]
    assert not [m for m in model.modules() if type(m) is nn.Hardsigmoid]

    size = TEST_SIZE[name]
    images = torch.randn(2, 3, size, size, requires_grad=True)
    logits = model(images)
    assert logits.shape == (2, 3)
    # Double backpropagation, as the guidance losses do it: an input gradient built with
    # create_graph, then a loss on it backpropagated to the weights.
    (grads,) = torch.autograd.grad(logits[:, 0].sum(), images, create_graph=True)
    grads.abs().sum().backward()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad is not None
    assert first_conv.weight.grad.abs().sum() > 0


def test_small_cnn_accepts_16_pixels_and_exposes_last_block():
    model = SmallCNN(num_classes=5).eval()
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 5)
    assert model.last_block is model.features[-1]
    assert model.last_block(torch.randn(1, 64, 8, 8)).shape == (1, 128, 8, 8)
    # The property does not register the block a second time.
    assert not [k for k in model.state_dict() if k.startswith("last_block")]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_deeplift_runs_on_every_model(name):
    model = build_model(name, num_classes=3).eval()
    size = TEST_SIZE[name]
    images = torch.randn(1, 3, size, size, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attributions = DeepLift(model).attribute(images, baselines=torch.zeros_like(images), target=1)
    assert attributions.shape == images.shape
    assert torch.isfinite(attributions).all()
    # captum always announces that it sets hooks; nothing else (e.g. a reused module) may warn.
    messages = [str(w.message) for w in caught]
    unexpected = [m for m in messages if "Setting forward, backward hooks" not in m]
    assert unexpected == []


def test_resnet_matches_torchvision_with_the_same_weights(tmp_path):
    """The untied ResNet blocks compute exactly what torchvision's blocks compute."""
    reference = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(reference.state_dict(), path)

    model = build_model("resnet18", 1000, weights_path=path).eval()
    assert set(model.state_dict()) == set(reference.state_dict())
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference(images))


def test_mobilenet_matches_torchvision_with_the_same_weights(tmp_path):
    """Rewriting Hardsigmoid as relu6(x + 3) / 6 leaves the function unchanged."""
    reference = torchvision.models.mobilenet_v3_small(weights=None).eval()
    path = tmp_path / "mobilenet.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("mobilenet_v3_small", 1000, weights_path=path).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference(images))


def test_local_weights_load_body_and_skip_a_head_of_another_size(tmp_path, caplog):
    source = build_model("resnet18", 1000)
    path = tmp_path / "imagenet.pth"
    torch.save(source.state_dict(), path)

    with caplog.at_level(logging.INFO, logger="models.weights"):
        model = build_model("resnet18", 3, weights_path=path)
    assert "fc.weight" in caplog.text and "fc.bias" in caplog.text
    loaded, expected = model.state_dict(), source.state_dict()
    for key, value in loaded.items():
        if key.startswith("fc."):
            assert value.shape[0] == 3
        else:
            assert torch.equal(value, expected[key]), key
    assert load_matching_weights(build_model("resnet18", 3), path) == ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("wrap", ["state_dict", "model", "module_prefix"])
def test_local_weights_in_a_checkpoint_dict(tmp_path, wrap):
    source = build_model("small_cnn", 4)
    state = source.state_dict()
    if wrap == "module_prefix":  # saved from nn.DataParallel
        payload = {f"module.{k}": v for k, v in state.items()}
    else:
        payload = {wrap: state, "epoch": 3, "classes": ["a", "b", "c", "d"]}
    path = tmp_path / "checkpoint.pt"
    torch.save(payload, path)

    model = build_model("small_cnn", 4, weights_path=path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "small.pth"
    torch.save(build_model("small_cnn", 3).state_dict(), path)
    with pytest.raises(WeightsError, match="another architecture"):
        build_model("resnet18", 3, weights_path=path)


def test_missing_or_unreadable_weights_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        build_model("small_cnn", 3, weights_path=tmp_path / "nope.pth")

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(WeightsError, match="could not read"):
        build_model("small_cnn", 3, weights_path=garbage)

    not_a_state_dict = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_state_dict)
    with pytest.raises(WeightsError, match="state dict"):
        build_model("small_cnn", 3, weights_path=not_a_state_dict)
    assert issubclass(WeightsError, ValueError)


def test_gradcam_layer_per_architecture():
    small = build_model("small_cnn", 3)
    assert gradcam_layer(small) is small.features[-1]
    for name in ("resnet18", "resnet50"):
        model = build_model(name, 3)
        assert gradcam_layer(model) is model.layer4
    for name in ("mobilenet_v3_small", "efficientnet_b0"):
        model = build_model(name, 3)
        assert gradcam_layer(model) is model.features[-1]


def test_gradcam_layer_falls_back_to_the_last_conv():
    last_conv = nn.Conv2d(8, 8, 3)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), last_conv, nn.Flatten(), nn.LazyLinear(2))
    assert gradcam_layer(model) is last_conv
    with pytest.raises(ValueError, match="no Conv2d"):
        gradcam_layer(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)))
