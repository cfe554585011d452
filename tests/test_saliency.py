"""Tests for app/explain/saliency.py: display saliency maps from captum, normalised to [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from app.explain.saliency import SALIENCY_LABELS, SALIENCY_METHODS, normalise_maps, saliency_maps
from models import MODEL_NAMES, build_model, finer_gradcam_layer, gradcam_layer


@pytest.fixture
def small_cnn():
    return build_model("small_cnn", num_classes=3)


def linear_model() -> nn.Sequential:
    """Flatten + Linear on 3 x 4 x 4 images, 2 classes, with hand-chosen weights.

    Row 1 is +k in channel 0, -k in channel 1, +k in channel 2 at pixel k (0..15), so the
    channel sum of its |weights| is 3k at pixel k. Row 0 is all ones (sum 3 everywhere).
    """
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    ramp = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    with torch.no_grad():
        model[1].weight[1] = torch.stack([ramp, -ramp, ramp]).flatten()
        model[1].weight[0] = 1.0
        model[1].bias.zero_()
    return model


def no_hooks_left(model: nn.Module) -> bool:
    return all(
        not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks) for m in model.modules()
    )


def test_labels_cover_every_method():
    assert tuple(SALIENCY_LABELS) == SALIENCY_METHODS


@pytest.mark.parametrize("method", SALIENCY_METHODS)
def test_every_method_gives_maps_in_unit_range(small_cnn, method):
    images = torch.randn(3, 3, 32, 32)
    maps = saliency_maps(small_cnn, images, torch.tensor([0, 1, 2]), method, n_steps=4)
    assert maps.shape == (3, 32, 32)
    assert maps.dtype == torch.float32 and maps.device.type == "cpu"
    assert torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() == 1.0
    assert no_hooks_left(small_cnn)


def test_vanilla_saliency_of_a_linear_model_is_its_weight_row():
    model = linear_model()
    images = torch.randn(2, 3, 4, 4)
    maps = saliency_maps(model, images, torch.tensor([1, 0]), "saliency")

    weights = model[1].weight.detach().reshape(2, 3, 4, 4)
    expected = normalise_maps(weights[[1, 0]].abs().sum(dim=1))
    assert torch.equal(maps, expected)
    # By hand: row 1 gives 3k at pixel k; its 99th percentile is 42 + 0.85 * 3 = 44.55.
    torch.testing.assert_close(maps[0].flatten(), (3 * torch.arange(16.0) / 44.55).clamp(max=1))
    # Row 0 is flat: every pixel is at the percentile.
    assert torch.equal(maps[1], torch.ones(4, 4))


@pytest.mark.parametrize("method", ["integrated_gradients", "deeplift"])
def test_attribution_of_a_linear_model_is_input_times_weight(method):
    """With a zero baseline both methods are exact for a linear model: x * w."""
    model = linear_model()
    images = torch.randn(2, 3, 4, 4)
    targets = torch.tensor([1, 0])
    maps = saliency_maps(model, images, targets, method, n_steps=8)
    weights = model[1].weight.detach().reshape(2, 3, 4, 4)[targets]
    expected = normalise_maps((images * weights).abs().sum(dim=1))
    torch.testing.assert_close(maps, expected)


def test_normalise_maps_by_hand():
    maps = torch.stack(
        [
            torch.zeros(10, 10),  # stays zero, no NaN
            torch.zeros(10, 10).index_put_((torch.tensor([3]), torch.tensor([4])), torch.tensor(5.0)),
            torch.full((10, 10), -2.0),  # negative counts as zero
            torch.full((10, 10), float("nan")),
        ]
    )
    out = normalise_maps(maps)
    assert torch.equal(out[0], torch.zeros(10, 10))
    # One hot pixel: the 99th percentile is 0, so the max scales it.
    assert out[1, 3, 4] == 1.0 and out[1].sum() == 1.0
    assert torch.equal(out[2], torch.zeros(10, 10))
    assert torch.equal(out[3], torch.zeros(10, 10))
    # A ramp 0..99: scaled by its 99th percentile 98.01 and clipped.
    ramp = torch.arange(100.0).reshape(1, 10, 10)
    torch.testing.assert_close(normalise_maps(ramp), (ramp / 98.01).clamp(max=1))


def test_model_mode_grads_and_requires_grad_are_restored(small_cnn):
    small_cnn.train()
    small_cnn.features[1].eval()  # a mixed state must come back exactly
    small_cnn.classifier.bias.requires_grad_(False)
    images = torch.randn(4, 3, 32, 32)
    targets = torch.tensor([0, 1, 2, 0])
    nn.functional.cross_entropy(small_cnn(images), targets).backward()
    small_cnn.classifier.weight.grad = None  # one parameter without a gradient
    before = {name: (p.grad.clone() if p.grad is not None else None, p.requires_grad) for name, p in small_cnn.named_parameters()}
    modes = [m.training for m in small_cnn.modules()]

    for method in SALIENCY_METHODS:
        saliency_maps(small_cnn, images, targets, method, n_steps=2)

    assert [m.training for m in small_cnn.modules()] == modes
    for name, p in small_cnn.named_parameters():
        grad, requires_grad = before[name]
        assert p.requires_grad == requires_grad, name
        if grad is None:
            assert p.grad is None, name
        else:
            assert torch.equal(p.grad, grad), name
    assert no_hooks_left(small_cnn)


def test_maps_use_eval_mode(small_cnn):
    """Training-mode BatchNorm would make one image's map depend on the others in its chunk."""
    small_cnn.train()
    images = torch.randn(4, 3, 32, 32)
    targets = torch.tensor([0, 1, 2, 0])
    together = saliency_maps(small_cnn, images, targets, "saliency")
    alone = saliency_maps(small_cnn, images[:1], targets[:1], "saliency")
    torch.testing.assert_close(together[:1], alone)


@pytest.mark.parametrize("method", ["saliency", "deeplift", "gradcam"])
def test_chunks_give_the_same_maps(small_cnn, method):
    images = torch.randn(5, 3, 32, 32)
    targets = torch.tensor([0, 1, 2, 0, 1])
    whole = saliency_maps(small_cnn, images, targets, method, batch_size=32)
    chunked = saliency_maps(small_cnn, images, targets, method, batch_size=2)
    torch.testing.assert_close(chunked, whole)


def test_gradient_shap_is_seeded_and_leaves_global_rngs_alone(small_cnn):
    images = torch.randn(2, 3, 32, 32)
    targets = torch.tensor([0, 1])
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    first = saliency_maps(small_cnn, images, targets, "gradient_shap", n_steps=4)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    second = saliency_maps(small_cnn, images, targets, "gradient_shap", n_steps=4)
    assert torch.equal(first, second)


def test_gradcam_layer_can_be_chosen(small_cnn):
    images = torch.randn(2, 3, 32, 32)
    targets = torch.tensor([0, 1])
    default = saliency_maps(small_cnn, images, targets, "gradcam")
    first_block = saliency_maps(small_cnn, images, targets, "gradcam", layer=small_cnn.features[0])
    assert first_block.shape == default.shape == (2, 32, 32)
    assert not torch.equal(first_block, default)


def test_works_under_no_grad_and_with_inference_tensors(small_cnn):
    with torch.inference_mode():
        images = torch.randn(2, 3, 32, 32)
    targets = torch.tensor([0, 1])
    reference = saliency_maps(small_cnn, images.clone(), targets, "saliency")
    with torch.no_grad():
        maps = saliency_maps(small_cnn, images, targets, "saliency")
    torch.testing.assert_close(maps, reference)


def test_deeplift_on_resnet18():
    model = build_model("resnet18", num_classes=3)
    maps = saliency_maps(model, torch.randn(1, 3, 64, 64), torch.tensor([2]), "deeplift")
    assert maps.shape == (1, 64, 64)
    assert torch.isfinite(maps).all() and maps.max() == 1.0
    assert no_hooks_left(model)


def test_bad_arguments(small_cnn):
    images = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError) as info:
        saliency_maps(small_cnn, images, torch.tensor([0, 1]), "lime")
    assert all(method in str(info.value) for method in SALIENCY_METHODS)
    with pytest.raises(ValueError, match="2 images but 3 targets"):
        saliency_maps(small_cnn, images, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="N x C x H x W"):
        saliency_maps(small_cnn, images[0], torch.tensor([0]))
    no_targets = torch.tensor([], dtype=torch.long)
    assert saliency_maps(small_cnn, images[:0], no_targets).shape == (0, 32, 32)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fine_gradcam_explains_a_stage_at_twice_the_resolution(name):
    model = build_model(name, num_classes=3).eval()
    images = torch.randn(1, 3, 64, 64)
    sides = {}
    layers = {"last": gradcam_layer(model), "finer": finer_gradcam_layer(model, images)}
    handles = [
        layer.register_forward_hook(lambda m, i, out, key=key: sides.__setitem__(key, out.shape[-1]))
        for key, layer in layers.items()
    ]
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    assert sides["finer"] >= 2 * sides["last"]
    maps = saliency_maps(model, images, torch.tensor([1]), "fine_gradcam")
    assert maps.shape == (1, 64, 64) and torch.isfinite(maps).all()
    assert 0.0 <= float(maps.min()) <= float(maps.max()) <= 1.0  # an untrained net's CAM may be all negative: 0
    assert no_hooks_left(model)


def test_fine_gradcam_falls_back_to_the_last_convolution_without_a_finer_one():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert finer_gradcam_layer(model, torch.randn(1, 3, 16, 16)) is model[0]
    assert saliency_maps(model, torch.randn(2, 3, 16, 16), torch.tensor([0, 1]), "fine_gradcam").shape == (2, 16, 16)


def test_the_finer_layer_probe_leaves_batchnorm_statistics_and_modes_alone():
    model = build_model("mobilenet_v3_small", num_classes=3).train()  # found by a probe forward
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    finer_gradcam_layer(model, torch.randn(1, 3, 64, 64))
    assert model.training and all(module.training for module in model.modules())
    assert all(torch.equal(buffers[name], buffer) for name, buffer in model.named_buffers())
