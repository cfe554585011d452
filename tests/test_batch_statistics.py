"""Tests for loss/batch_statistics.py's recording: the statistics come from the normalising kernel
(``_BatchNormWithStatistics``) and behave as native BatchNorm plus ``mean_and_variance`` did."""

import copy

import pytest
import torch
from torch import nn

from loss.batch_statistics import mean_and_variance, recording_batch_statistics


def model(momentum):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4, momentum=momentum),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
        nn.BatchNorm1d(5, momentum=momentum),
    ).train()


def batchnorm_inputs(net, images):
    """Native forward of ``net`` with each BatchNorm's input captured: (output, inputs)."""
    captured = {}
    hooks = [
        module.register_forward_hook(lambda m, i, o: captured.__setitem__(m, i[0]))
        for module in net.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
    ]
    try:
        return net(images), list(captured.values())
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.parametrize("momentum", [0.1, None])
def test_outputs_running_averages_and_gradients_are_native_ones(momentum):
    """Against native BatchNorm with the statistics computed beside it (the former hook), over
    two batches (momentum None: the cumulative average counts them)."""
    fused, native = model(momentum), model(momentum)
    weights = torch.randn(8, 5)
    for seed in (1, 2):
        images = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
        fused.zero_grad(), native.zero_grad()
        with recording_batch_statistics(fused) as statistics:
            out = fused(images)
        reference, inputs = batchnorm_inputs(native, images)
        torch.testing.assert_close(out, reference)
        # The statistics enter a second loss, as the guidance forward's normalisation uses them.
        ((out * weights).sum() + sum((m * m).sum() + v.sum() for m, v in statistics.values())).backward()
        native_statistics = [mean_and_variance(x) for x in inputs]
        ((reference * weights).sum() + sum((m * m).sum() + v.sum() for m, v in native_statistics)).backward()
        for (mean, variance), (want_mean, want_variance) in zip(statistics.values(), native_statistics):
            torch.testing.assert_close(mean, want_mean)
            torch.testing.assert_close(variance, want_variance, rtol=1e-4, atol=1e-6)
        for got, want in zip(fused.parameters(), native.parameters()):
            torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-6)
        for got, want in zip(fused.modules(), native.modules()):
            if isinstance(got, nn.modules.batchnorm._BatchNorm):
                torch.testing.assert_close(got.running_mean, want.running_mean)
                torch.testing.assert_close(got.running_var, want.running_var)
                assert int(got.num_batches_tracked) == int(want.num_batches_tracked) == seed


def test_forwards_are_restored_and_a_second_run_is_refused():
    net = model(0.1)
    twin = copy.deepcopy(net)
    with recording_batch_statistics(net) as statistics:
        net(torch.randn(4, 3, 6, 6))
        with pytest.raises(RuntimeError, match="ran twice"):
            net(torch.randn(4, 3, 6, 6))
    assert len(statistics) == 2
    assert all("forward" not in vars(m) for m in net.modules())
    images = torch.randn(4, 3, 6, 6)
    net.eval(), twin.eval()
    with recording_batch_statistics(net) as statistics:
        out = net(images)
    assert statistics == {}  # eval mode: running averages, nothing recorded
    assert out.shape == twin(images).shape
