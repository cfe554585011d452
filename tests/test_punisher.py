"""Tests for loss/punisher.py: exact values on a linear model (input gradient = weight row)."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from loss import PunisherLoss
from loss.input_gradients import abs_sum_over_channels, input_gradients, labelled_logit

C, H, W, K = 3, 4, 4, 5
CLIP = 0.5


def linear_model() -> nn.Sequential:
    """Flatten + Linear with weights large enough that some pixel magnitudes exceed the clip."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, K)).double()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model[1].weight.copy_(0.3 * torch.randn(K, C * H * W, generator=generator))
        model[1].bias.copy_(torch.randn(K, generator=generator))
    return model


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, 6), nn.Tanh(), nn.Linear(6, K)).double()


def batch(n: int = 4, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, C, H, W, generator=generator, dtype=torch.float64)
    targets = torch.tensor([0, 2, 2, 4, 1, 3][:n])
    return images, targets


def masks_of(kind: str, n: int = 4) -> torch.Tensor:
    masks = torch.zeros(n, H, W, dtype=torch.float64)
    if kind in ("red", "mixed"):
        masks[:, :2, :] = 1.0  # top half red
    if kind in ("green", "mixed"):
        masks[:, 3, 1:] = -1.0  # part of the bottom row green
    if kind == "mixed":
        masks[1] = 0.0  # one sample without any paint
    return masks


def expected_punisher(model, targets, masks, clip):
    """Hand computation: G_n = W[y_n] as C x H x W, magnitude sum_c |G|, clipped, mask-weighted."""
    weight = model[1].weight.detach().numpy().reshape(K, C, H, W)
    magnitude = np.abs(weight[targets.numpy()]).sum(axis=1)  # N x H x W
    if clip is not None:
        magnitude = np.minimum(magnitude, clip)
    return float((masks.numpy() * magnitude).sum(axis=(1, 2)).mean())


def test_some_magnitudes_straddle_the_clip():
    # Makes sure the exact-value tests below exercise the clip.
    weight = linear_model()[1].weight.detach().numpy().reshape(K, C, H, W)
    magnitude = np.abs(weight).sum(axis=1)
    assert (magnitude > CLIP).any() and (magnitude < CLIP).any()


@pytest.mark.parametrize("kind", ["red", "green", "mixed", "none"])
@pytest.mark.parametrize("clip", [CLIP, None])
def test_exact_value_on_linear_model(kind, clip):
    model = linear_model()
    images, targets = batch()
    masks = masks_of(kind)
    value = PunisherLoss(clip=clip)(model, images, targets, masks)
    assert value.shape == ()
    np.testing.assert_allclose(value.item(), expected_punisher(model, targets, masks, clip), 1e-12)


def test_sign_follows_the_paint():
    model = linear_model()
    images, targets = batch()
    loss = PunisherLoss()
    assert loss(model, images, targets, masks_of("red")).item() > 0
    assert loss(model, images, targets, masks_of("green")).item() < 0
    assert loss(model, images, targets, masks_of("none")).item() == 0.0
    # Bounded by the clip: at most clip per red pixel, at least -clip per green pixel.
    assert loss(model, images, targets, masks_of("red")).item() <= CLIP * 2 * W


def test_gradient_wrt_weights_matches_hand_derivative():
    # dL/dW[k,c,i,j] = 1/N sum_{n: y_n = k} M_nij sign(W[k,c,i,j]) [magnitude_kij < clip]
    model = linear_model()
    images, targets = batch()
    masks = masks_of("mixed")
    PunisherLoss(clip=CLIP)(model, images, targets, masks).backward()
    weight = model[1].weight.detach().numpy().reshape(K, C, H, W)
    unclipped = np.abs(weight).sum(axis=1) < CLIP  # K x H x W
    expected = np.zeros_like(weight)
    for n, k in enumerate(targets.tolist()):
        expected[k] += masks[n].numpy()[None] * np.sign(weight[k]) * unclipped[k][None]
    expected /= len(targets)
    np.testing.assert_allclose(model[1].weight.grad.numpy().reshape(K, C, H, W), expected, rtol=0, atol=1e-12)
    assert np.abs(expected).sum() > 0
    # The input gradient of a linear model does not depend on the bias.
    assert model[1].bias.grad is None or torch.count_nonzero(model[1].bias.grad) == 0


class Functional(nn.Module):
    """Calls ``model`` with the given parameter tensors, so gradcheck can vary them."""

    def __init__(self, model: nn.Module, params: tuple) -> None:
        super().__init__()
        self.model = model
        self.params = dict(zip([name for name, _ in model.named_parameters()], params))

    def forward(self, images):
        return functional_call(self.model, self.params, (images,))


def test_second_order_gradient_matches_finite_differences():
    model = mlp()
    images, targets = batch()
    masks = masks_of("mixed")
    loss = PunisherLoss(clip=0.08)  # MLP magnitudes are ~0.01-0.15: some pixels are clipped
    # The last bias does not change any input gradient, so it is held fixed.
    *varied, last_bias = (p.detach().clone() for p in model.parameters())
    varied = tuple(p.requires_grad_(True) for p in varied)

    def value(*ps):
        return loss(Functional(model, (*ps, last_bias)), images, targets, masks)

    assert torch.autograd.gradcheck(value, varied, eps=1e-6, atol=1e-6, fast_mode=True)
    first_weight, first_bias, second_weight = torch.autograd.grad(value(*varied), varied)
    assert first_weight.abs().sum() > 0 and first_bias.abs().sum() > 0
    assert second_weight.abs().sum() > 0


def test_one_step_reduces_gradient_magnitude_on_red_pixels():
    model = mlp()
    images, targets = batch()
    masks = masks_of("red")
    red = masks == 1

    def red_magnitude():
        _, grads = input_gradients(model, images, labelled_logit, targets)
        return abs_sum_over_channels(grads).detach()[red].mean().item()

    before = red_magnitude()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    PunisherLoss()(model, images, targets, masks).backward()
    optimizer.step()
    assert red_magnitude() < before


def test_empty_batch_gives_a_zero_that_backpropagates():
    model = linear_model()
    value = PunisherLoss()(
        model,
        torch.zeros(0, C, H, W, dtype=torch.float64),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, H, W, dtype=torch.float64),
    )
    assert value.item() == 0.0
    value.backward()
    assert torch.count_nonzero(model[1].weight.grad) == 0


def test_rejects_bad_clip_and_mismatched_masks():
    with pytest.raises(ValueError):
        PunisherLoss(clip=0)
    images, targets = batch()
    with pytest.raises(ValueError, match="masks"):
        PunisherLoss()(linear_model(), images, targets, torch.zeros(4, H, W + 1))
