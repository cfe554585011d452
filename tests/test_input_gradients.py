"""Tests for loss/input_gradients.py: exact input gradients of linear models, known by hand."""

import numpy as np
import pytest
import torch
from torch import nn

from loss.input_gradients import (
    abs_sum_over_channels,
    check_guidance_inputs,
    input_gradients,
    labelled_logit,
    square_sum_over_channels,
    summed_log_probs,
    zero_loss,
)

C, H, W, K = 3, 4, 4, 5


def linear_model(seed: int = 0) -> nn.Module:
    """f(x) = W flatten(x) + b, so d f_y / d x = W[y] reshaped to C x H x W."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, K)).double()


def batch(n: int = 6, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, C, H, W, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, K, (n,), generator=generator)
    return images, targets


def test_labelled_logit_gradient_is_the_weight_row():
    model = linear_model()
    images, targets = batch()
    logits, grads = input_gradients(model, images, labelled_logit, targets)
    weight = model[1].weight.detach().numpy()
    expected = weight[targets.numpy()].reshape(-1, C, H, W)
    np.testing.assert_allclose(grads.detach().numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        logits.detach().numpy(),
        images.reshape(len(images), -1).numpy() @ weight.T + model[1].bias.detach().numpy(),
        atol=1e-12,
    )


def test_summed_log_probs_gradient_matches_closed_form():
    # d/dx sum_k log p_k = sum_k (W_k - sum_j p_j W_j) = sum_k W_k - K * sum_j p_j W_j
    model = linear_model()
    images, targets = batch()
    _, grads = input_gradients(model, images, summed_log_probs, targets)
    weight = model[1].weight.detach().numpy()
    bias = model[1].bias.detach().numpy()
    flat = images.reshape(len(images), -1).numpy()
    logits = flat @ weight.T + bias
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    expected = weight.sum(0)[None, :] - K * probs @ weight
    np.testing.assert_allclose(grads.detach().numpy().reshape(len(images), -1), expected, rtol=1e-10, atol=1e-12)


def test_gradients_are_part_of_the_graph_even_under_no_grad():
    model = linear_model()
    images, targets = batch()
    with torch.no_grad():
        _, grads = input_gradients(model, images, labelled_logit, targets)
    assert grads.requires_grad
    # The labelled logit's gradient is W[y]; d/dW of sum(grads) is 1 on the used rows.
    grads.sum().backward()
    counts = np.bincount(targets.numpy(), minlength=K)
    weight_grad = model[1].weight.grad.numpy()
    for k in range(K):
        np.testing.assert_allclose(weight_grad[k], counts[k] * np.ones(C * H * W))
    assert not images.requires_grad  # the caller's tensor is left alone


def test_score_fn_must_return_one_score_per_sample():
    model = linear_model()
    images, targets = batch()
    with pytest.raises(ValueError, match="one score per sample"):
        input_gradients(model, images, lambda logits, t: logits, targets)


def test_labelled_logit_needs_targets():
    with pytest.raises(ValueError):
        labelled_logit(torch.zeros(2, 3), None)


def test_channel_reductions_by_hand():
    grads = torch.tensor([[[[1.0, -2.0]], [[-3.0, 0.5]]]])  # 1 x 2 x 1 x 2
    assert abs_sum_over_channels(grads).tolist() == [[[4.0, 2.5]]]
    assert square_sum_over_channels(grads).tolist() == [[[10.0, 4.25]]]


def test_check_guidance_inputs_rejects_mismatched_shapes():
    images = torch.zeros(2, 3, 4, 4)
    check_guidance_inputs(images, torch.zeros(2, dtype=torch.long), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="masks"):
        check_guidance_inputs(images, torch.zeros(2, dtype=torch.long), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="targets"):
        check_guidance_inputs(images, torch.zeros(3, dtype=torch.long), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="images"):
        check_guidance_inputs(torch.zeros(3, 4, 4), torch.zeros(3), torch.zeros(3, 4, 4))


def test_zero_loss_is_zero_and_backpropagates():
    model = linear_model()
    zero = zero_loss(model, torch.zeros(0, C, H, W, dtype=torch.float64))
    assert zero.shape == () and zero.item() == 0.0
    zero.backward()
    assert torch.count_nonzero(model[1].weight.grad) == 0


# loss/affine_batchnorm.py is an implementation detail of input_gradients; tested here.


class TinyBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(C, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * H * W, K)

    def forward(self, images):
        return self.head(torch.tanh(self.bn(self.conv(images))).flatten(1))


def trained_bn_model() -> TinyBN:
    """A TinyBN whose BatchNorm has non-trivial running stats and affine parameters."""
    torch.manual_seed(0)
    model = TinyBN().double()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, C, H, W, dtype=torch.float64) * 2 + 1)
        model.bn.weight.uniform_(0.5, 2.0)
        model.bn.bias.uniform_(-1.0, 1.0)
    return model


def test_affine_batchnorm_matches_native_eval_batchnorm_to_second_order():
    from loss.affine_batchnorm import affine_batchnorm

    model = trained_bn_model().eval()
    images, targets = batch()

    def second_order(use_affine: bool):
        model.zero_grad(set_to_none=True)
        inputs = images.clone().requires_grad_(True)
        if use_affine:
            with affine_batchnorm(model):
                logits = model(inputs)
        else:
            logits = model(inputs)
        (grads,) = torch.autograd.grad(labelled_logit(logits, targets).sum(), inputs, create_graph=True)
        grads.pow(2).sum().backward()
        return logits.detach(), grads.detach(), [p.grad for p in model.parameters()]

    native, affine = second_order(False), second_order(True)
    torch.testing.assert_close(affine[0], native[0])
    torch.testing.assert_close(affine[1], native[1])
    for got, want in zip(affine[2], native[2]):
        if want is None:  # the head's bias does not change input gradients
            assert got is None
        else:
            torch.testing.assert_close(got, want)
    assert model.bn.weight.grad.abs().sum() > 0
    assert len(model.bn._forward_hooks) == 0


def test_affine_batchnorm_leaves_train_mode_alone_and_removes_hooks_on_error():
    from loss.affine_batchnorm import affine_batchnorm

    model = trained_bn_model().train()
    reference = trained_bn_model().train()
    images, _ = batch()
    with affine_batchnorm(model):
        out = model(images)
    torch.testing.assert_close(out, reference(images))
    torch.testing.assert_close(model.bn.running_mean, reference.bn.running_mean)
    with pytest.raises(RuntimeError, match="boom"):
        with affine_batchnorm(model):
            raise RuntimeError("boom")
    assert len(model.bn._forward_hooks) == 0
