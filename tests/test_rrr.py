"""Tests for loss/rrr.py: exact values on a linear model, where the gradient of the summed
log-probabilities has the closed form sum_k W_k - K * sum_j p_j W_j."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from loss import RRRLoss
from loss.input_gradients import input_gradients, summed_log_probs

C, H, W, K = 3, 4, 4, 5


def linear_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, K)).double()


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, 6), nn.Tanh(), nn.Linear(6, K)).double()


def batch(n: int = 4, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, C, H, W, generator=generator, dtype=torch.float64)
    targets = torch.tensor([0, 2, 2, 4, 1, 3][:n])
    return images, targets


def masks_of(kind: str, n: int = 4) -> torch.Tensor:
    masks = torch.zeros(n, H, W, dtype=torch.float64)
    if kind in ("red", "mixed"):
        masks[:, :2, :] = 1.0
        masks[2, :, 0] = 1.0  # per-sample differences
    if kind in ("green", "mixed"):
        masks[:, 3, 1:] = -1.0
    if kind == "mixed":
        masks[1] = 0.0
    return masks


def expected_rrr(model, images, masks):
    """Closed form of d/dx sum_k log softmax(Wx + b)_k, squared on red pixels (all channels)."""
    weight = model[1].weight.detach().numpy()
    bias = model[1].bias.detach().numpy()
    flat = images.reshape(len(images), -1).numpy()
    logits = flat @ weight.T + bias
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    grads = (weight.sum(axis=0)[None] - K * probs @ weight).reshape(-1, C, H, W)
    red = (masks.numpy() == 1)[:, None]  # N x 1 x H x W
    return float(((red * grads) ** 2).sum(axis=(1, 2, 3)).mean())


@pytest.mark.parametrize("kind", ["red", "mixed"])
def test_exact_value_on_linear_model(kind):
    model = linear_model()
    images, targets = batch()
    masks = masks_of(kind)
    value = RRRLoss()(model, images, targets, masks)
    assert value.shape == ()
    expected = expected_rrr(model, images, masks)
    assert expected > 0
    np.testing.assert_allclose(value.item(), expected, rtol=1e-10)


def test_green_and_unmarked_pixels_are_ignored():
    model = linear_model()
    images, targets = batch()
    loss = RRRLoss()
    assert loss(model, images, targets, masks_of("green")).item() == 0.0
    assert loss(model, images, targets, masks_of("none")).item() == 0.0
    red_only = masks_of("mixed").clamp(min=0)
    np.testing.assert_allclose(
        loss(model, images, targets, masks_of("mixed")).item(),
        loss(model, images, targets, red_only).item(),
        rtol=0,
        atol=0,
    )


def test_targets_do_not_change_the_value():
    model = linear_model()
    images, targets = batch()
    masks = masks_of("red")
    loss = RRRLoss()
    assert loss(model, images, targets, masks).item() == loss(model, images, (targets + 1) % K, masks).item()


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
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())

    def value(*ps):
        return RRRLoss()(Functional(model, ps), images, targets, masks)

    assert torch.autograd.gradcheck(value, params, eps=1e-6, atol=1e-7, fast_mode=True)
    grads = torch.autograd.grad(value(*params), params)
    assert all(g.abs().sum() > 0 for g in grads)


def test_one_step_reduces_the_red_gradient():
    model = mlp()
    images, targets = batch()
    masks = masks_of("red")
    red = (masks == 1).unsqueeze(1).expand(-1, C, -1, -1)

    def red_energy():
        _, grads = input_gradients(model, images, summed_log_probs, targets)
        return grads.detach()[red].pow(2).sum().item()

    before = red_energy()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    RRRLoss()(model, images, targets, masks).backward()
    optimizer.step()
    assert red_energy() < before


def test_empty_batch_gives_a_zero_that_backpropagates():
    model = linear_model()
    value = RRRLoss()(
        model,
        torch.zeros(0, C, H, W, dtype=torch.float64),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, H, W, dtype=torch.float64),
    )
    assert value.item() == 0.0
    value.backward()
    assert torch.count_nonzero(model[1].weight.grad) == 0
