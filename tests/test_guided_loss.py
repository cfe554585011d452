"""Tests for loss/guided.py (CE over the batch + lam * guidance on annotated rows, the same
network: whole-batch BatchNorm statistics)
and loss/factory.py (build_guidance, GUIDANCE_NAMES, DEFAULT_LAMBDAS)."""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from loss import (
    DEFAULT_LAMBDAS,
    GUIDANCE_NAMES,
    SHARED_FORWARD_FROM,
    GradCAMLoss,
    GuidedLoss,
    PunisherLoss,
    RRRLoss,
    build_guidance,
    guided_loss,
)

C, H, W, K, N = 3, 8, 8, 3, 6


class TinyBN(nn.Module):
    """conv -> BatchNorm -> ReLU -> pool -> linear: BatchNorm behaves differently in train/eval."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(C, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, K)

    def forward(self, images):
        features = self.relu(self.bn(self.conv(images)))
        return self.head(self.pool(features).flatten(1))


def batch(seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(N, C, H, W, generator=generator)
    targets = torch.randint(0, K, (N,), generator=generator)
    masks = torch.zeros(N, H, W)
    masks[:, :3] = 1.0
    masks[:, 6:] = -1.0
    has_mask = torch.tensor([True, False, True, False, False, True])
    return images, targets, masks, has_mask


class ForwardCounter:
    def __init__(self, model: nn.Module) -> None:
        self.calls = 0
        self.handle = model.register_forward_hook(self._count)

    def _count(self, module, inputs, output):
        self.calls += 1


class Spy(nn.Module):
    """A guidance loss that records what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = []

    def forward(self, model, images, targets, masks):
        self.seen.append((images.clone(), targets.clone(), masks.clone(), model.training))
        return model(images).pow(2).mean()


@pytest.mark.parametrize(
    "guidance, lam, has_mask",
    [
        (PunisherLoss(), 1.0, torch.zeros(N, dtype=torch.bool)),  # nothing annotated
        (None, 1.0, torch.ones(N, dtype=torch.bool)),  # no guidance loss
        (PunisherLoss(), 0.0, torch.ones(N, dtype=torch.bool)),  # weight zero
    ],
)
def test_plain_step_is_plain_cross_entropy_with_one_forward(guidance, lam, has_mask):
    model = TinyBN().train()
    images, targets, masks, _ = batch()
    expected = F.cross_entropy(copy.deepcopy(model)(images), targets)
    counter = ForwardCounter(model)
    result = guided_loss(model, images, targets, masks, has_mask, guidance, lam)
    assert isinstance(result, GuidedLoss)
    assert counter.calls == 1
    torch.testing.assert_close(result.total, expected)
    torch.testing.assert_close(result.ce, expected.detach())
    assert result.guidance.item() == 0.0
    assert result.total.requires_grad and not result.ce.requires_grad


class HandNormalised(nn.Module):
    """TinyBN with its BatchNorm written out, normalising with the statistics of ``batch``'s
    conv output (kept in the graph): the network the guidance forward must compute."""

    def __init__(self, model: TinyBN, batch_images) -> None:
        super().__init__()
        self.model = model
        self.batch_images = batch_images

    def forward(self, images):
        m = self.model
        variance, mean = torch.var_mean(m.conv(self.batch_images), dim=(0, 2, 3), unbiased=False)
        scale = m.bn.weight / (variance + m.bn.eps).sqrt()
        normalised = (m.conv(images) - mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
        features = m.relu(normalised + m.bn.bias.view(1, -1, 1, 1))
        return m.head(m.pool(features).flatten(1))


def few_annotated():
    """The batch with 2 of 6 rows annotated: below SHARED_FORWARD_FROM, a second forward."""
    images, targets, masks, has_mask = batch()
    has_mask = torch.tensor([True, False, False, False, False, True])
    assert has_mask.float().mean() < SHARED_FORWARD_FROM
    return images, targets, masks, has_mask


@pytest.mark.parametrize("guidance_class", [PunisherLoss, RRRLoss])
def test_second_forward_uses_the_whole_batch_statistics_in_the_graph(guidance_class):
    model = TinyBN().train()
    reference = copy.deepcopy(model)
    images, targets, masks, has_mask = few_annotated()
    lam = 3.0
    counter = ForwardCounter(model)
    result = guided_loss(model, images, targets, masks, has_mask, guidance_class(), lam)
    assert counter.calls == 2

    ce = F.cross_entropy(reference(images), targets)
    hand = HandNormalised(reference, images)
    penalty = guidance_class()(hand, images[has_mask], targets[has_mask], masks[has_mask])
    assert penalty.abs().item() > 0
    torch.testing.assert_close(result.ce, ce.detach())
    torch.testing.assert_close(result.guidance, penalty.detach())
    torch.testing.assert_close(result.total, ce + lam * penalty)

    # ...and so are the parameter gradients (including those through the statistics).
    result.total.backward()
    (ce + lam * penalty).backward()
    for got, want in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(got.grad, want.grad)


def test_penalty_on_the_painted_rows_cross_entropy_on_the_counterexamples():
    # With counterexamples the CE trains on the swapped batch (and its statistics), while the
    # penalty looks at the annotated rows as painted, where the marked shortcut still is.
    model = TinyBN().train()
    reference = copy.deepcopy(model)
    painted, targets, masks, has_mask = few_annotated()
    swapped = painted.clone()
    swapped[has_mask, :, :3] = painted[~has_mask][:2, :, :3]  # red rows' pixels from other rows
    result = guided_loss(model, swapped, targets, masks, has_mask, RRRLoss(), 2.0, painted=painted)

    ce = F.cross_entropy(reference(swapped), targets)
    hand = HandNormalised(reference, swapped)
    penalty = RRRLoss()(hand, painted[has_mask], targets[has_mask], masks[has_mask])
    on_swapped = RRRLoss()(hand, swapped[has_mask], targets[has_mask], masks[has_mask])
    assert not torch.allclose(penalty, on_swapped)  # the choice matters
    torch.testing.assert_close(result.ce, ce.detach())
    torch.testing.assert_close(result.guidance, penalty.detach())
    result.total.backward()
    (ce + 2.0 * penalty).backward()
    for got, want in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(got.grad, want.grad)

    with pytest.raises(ValueError, match="painted must have"):
        guided_loss(model, swapped, targets, masks, has_mask, RRRLoss(), 2.0, painted=painted[:2])


@pytest.mark.parametrize("shared_forward", [False, True])
def test_penalty_cannot_be_gamed_by_scaling_weights_before_batchnorm(shared_forward):
    # With statistics detached from the graph, shrinking the conv weights shrank the penalty
    # (and training collapsed); normalising with statistics in the graph makes it invariant.
    model = TinyBN().train()
    images, targets, masks, has_mask = few_annotated()
    before = guided_loss(model, images, targets, masks, has_mask, RRRLoss(), 1.0, shared_forward=shared_forward)
    with torch.no_grad():
        model.conv.weight.mul_(0.3)  # not smaller: BatchNorm's eps would start to count
        model.conv.bias.mul_(0.3)
    after = guided_loss(model, images, targets, masks, has_mask, RRRLoss(), 1.0, shared_forward=shared_forward)
    torch.testing.assert_close(after.guidance, before.guidance, rtol=1e-3, atol=1e-9)


def tanh_net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(C, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * H * W, K))


class BatchNormAfterTheLayer(nn.Module):
    """conv -> ReLU -> [Grad-CAM layer] conv -> BatchNorm -> ReLU -> pool -> linear: train-mode
    statistics after the Grad-CAM layer mix the rows' activation gradients unless gated."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.first = nn.Sequential(nn.Conv2d(C, 4, 3, padding=1), nn.ReLU())
        self.second = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4, K)

    def forward(self, images):
        return self.head(self.second(self.first(images)).mean(dim=(2, 3)))


def gradcam_of(layer_name):
    return lambda model: GradCAMLoss(getattr(model, layer_name))


@pytest.mark.parametrize(
    "make_model, make_guidance",
    [
        (lambda: TinyBN().train(), gradcam_of("relu")),
        (lambda: BatchNormAfterTheLayer().train(), gradcam_of("first")),
    ],
    ids=["batchnorm-before-the-layer", "batchnorm-after-the-layer"],
)
def test_gradcam_from_the_cross_entropy_forward_equals_its_own_forward(make_model, make_guidance):
    """The same penalty and parameter gradients as a forward of the annotated rows of their own
    normalised with the batch's statistics (where the statistics come after the layer too)."""
    model = make_model()
    twin = copy.deepcopy(model)
    images, targets, masks, has_mask = batch()
    counter = ForwardCounter(model)
    shared = guided_loss(model, images, targets, masks, has_mask, make_guidance(model), 2.0, shared_forward=True)
    assert counter.calls == 1
    second = guided_loss(twin, images, targets, masks, has_mask, make_guidance(twin), 2.0, shared_forward=False)
    assert second.guidance.abs().item() > 0
    torch.testing.assert_close(shared.guidance, second.guidance)
    shared.total.backward()
    second.total.backward()
    for got, want in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(got.grad, want.grad)


@pytest.mark.parametrize("make_model", [tanh_net, lambda: TinyBN().train()], ids=["no-batchnorm", "train-batchnorm"])
@pytest.mark.parametrize("guidance_class", [PunisherLoss, RRRLoss])
def test_shared_forward_equals_second_forward(guidance_class, make_model):
    # With train-mode BatchNorm the shared forward closes the statistics' input path for the
    # input-gradient pass only: the same per-row penalty, and the same parameter gradients
    # (through the statistics too) as the second forward normalised with the batch's statistics.
    model = make_model()
    twin = copy.deepcopy(model)
    images, targets, masks, has_mask = batch()
    counter = ForwardCounter(model)
    shared = guided_loss(model, images, targets, masks, has_mask, guidance_class(), 2.0, shared_forward=True)
    assert counter.calls == 1
    second = guided_loss(twin, images, targets, masks, has_mask, guidance_class(), 2.0, shared_forward=False)
    assert second.guidance.abs().item() > 0
    torch.testing.assert_close(shared.guidance, second.guidance)
    torch.testing.assert_close(shared.total, second.total)
    shared.total.backward()
    second.total.backward()
    for got, want in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(got.grad, want.grad)


def test_shared_forward_without_the_gate_differs_under_train_batchnorm():
    # The reason for the gate: the summed scores' gradient through shared statistics is not an
    # image's own gradient.
    model = TinyBN().train()
    images, targets, masks, has_mask = batch()
    inputs = images.clone().requires_grad_(True)
    logits = model(inputs)  # native BatchNorm: statistics in the input path
    coupled = RRRLoss().penalty_from_forward(inputs, logits, targets, masks, has_mask)
    exact = guided_loss(TinyBN().train(), images, targets, masks, has_mask, RRRLoss(), 1.0, shared_forward=True).guidance
    assert not torch.allclose(coupled, exact, rtol=1e-2)


def test_shared_forward_when_most_rows_are_annotated_and_no_dropout_is_on():
    model = TinyBN().train()
    images, targets, masks, _ = batch()
    counter = ForwardCounter(model)
    most = torch.tensor([True, True, True, True, True, False])
    assert most.float().mean() >= SHARED_FORWARD_FROM
    guided_loss(model, images, targets, masks, most, RRRLoss(), 1.0)
    assert counter.calls == 1  # train-mode BatchNorm is fine: the statistics are gated
    guided_loss(model, images, targets, masks, *few_annotated()[3:], RRRLoss(), 1.0)
    assert counter.calls == 3  # few rows: a second forward is cheaper
    guided_loss(model, images, targets, masks, most, GradCAMLoss(model.conv), 1.0)
    assert counter.calls == 4  # Grad-CAM takes its activations' gradients from the CE forward too
    guided_loss(model, images, targets, masks, *few_annotated()[3:], GradCAMLoss(model.conv), 1.0)
    assert counter.calls == 6
    with pytest.raises(ValueError, match="cannot share"):
        guided_loss(model, images, targets, masks, most, Spy(), 1.0, shared_forward=True)

    dropping = nn.Sequential(TinyBN(), nn.Dropout(0.5)).train()
    counter = ForwardCounter(dropping)
    guided_loss(dropping, images, targets, masks, most, RRRLoss(), 1.0)
    assert counter.calls == 2  # the second forward runs without dropout; a shared one cannot


def test_guidance_sees_only_annotated_rows_in_train_mode():
    model = TinyBN().train()
    images, targets, masks, has_mask = batch()
    spy = Spy()
    guided_loss(model, images, targets, masks, has_mask.long(), spy, 0.5)  # 0/1 flags work too
    ((seen_images, seen_targets, seen_masks, seen_training),) = spy.seen
    torch.testing.assert_close(seen_images, images[has_mask])
    torch.testing.assert_close(seen_targets, targets[has_mask])
    torch.testing.assert_close(seen_masks, masks[has_mask])
    assert seen_training is True  # train mode, normalised with the whole batch's statistics
    assert model.training
    assert "forward" not in vars(model.bn)  # the class's forward is back


def test_each_submodule_mode_is_restored():
    model = TinyBN().train()
    model.bn.eval()  # e.g. a caller that freezes BatchNorm
    images, targets, masks, has_mask = batch()
    guided_loss(model, images, targets, masks, has_mask, PunisherLoss(), 1.0)
    assert model.training and model.conv.training and model.head.training
    assert not model.bn.training

    model.eval()
    guided_loss(model, images, targets, masks, has_mask, PunisherLoss(), 1.0)
    assert not any(module.training for module in model.modules())


def test_mode_is_restored_when_the_guidance_raises():
    class Broken(nn.Module):
        def forward(self, model, images, targets, masks):
            raise RuntimeError("boom")

    model = TinyBN().train()
    images, targets, masks, has_mask = batch()
    with pytest.raises(RuntimeError, match="boom"):
        guided_loss(model, images, targets, masks, has_mask, Broken(), 1.0)
    assert all(module.training for module in model.modules())


@pytest.mark.parametrize("shared_forward", [False, True])
def test_batchnorm_running_stats_only_see_the_full_batch(shared_forward):
    model = TinyBN().train()
    plain = copy.deepcopy(model)
    images, targets, masks, has_mask = batch()
    guided_loss(model, images, targets, masks, has_mask, RRRLoss(), 1.0, shared_forward=shared_forward).total.backward()
    plain(images)  # one ordinary training forward of the whole batch
    torch.testing.assert_close(model.bn.running_mean, plain.bn.running_mean)
    torch.testing.assert_close(model.bn.running_var, plain.bn.running_var)
    assert model.bn.num_batches_tracked.item() == 1


def test_rejects_bad_arguments():
    model = TinyBN()
    images, targets, masks, has_mask = batch()
    with pytest.raises(ValueError, match="lam"):
        guided_loss(model, images, targets, masks, has_mask, PunisherLoss(), -1.0)
    with pytest.raises(ValueError, match="has_mask"):
        guided_loss(model, images, targets, masks, has_mask[:3], PunisherLoss(), 1.0)


# build_guidance / GUIDANCE_NAMES / DEFAULT_LAMBDAS live in loss/factory.py; tested here.


def test_build_guidance_by_name():
    model = TinyBN()
    assert GUIDANCE_NAMES == ("punisher", "rrr", "gradcam")
    assert isinstance(build_guidance("punisher", model), PunisherLoss)
    assert build_guidance("punisher", model).clip == 0.5
    assert isinstance(build_guidance("rrr", model), RRRLoss)
    with pytest.raises(ValueError, match="punisher, rrr, gradcam"):
        build_guidance("saliency", model)


def test_build_gradcam_hooks_the_models_gradcam_layer():
    models = pytest.importorskip("models")
    model = models.build_model("small_cnn", num_classes=K)
    loss = build_guidance("gradcam", model)
    assert isinstance(loss, GradCAMLoss)
    assert loss.layer is models.gradcam_layer(model)
    # End to end on the real small CNN: a guided step with Grad-CAM backpropagates.
    model.train()
    generator = torch.Generator().manual_seed(2)
    images = torch.randn(4, 3, 32, 32, generator=generator)
    masks = torch.zeros(4, 32, 32)
    masks[:, :8, :8] = 1.0
    has_mask = torch.tensor([True, True, False, False])
    result = guided_loss(model, images, torch.arange(4) % K, masks, has_mask, loss, 1.0)
    assert 0.0 < result.guidance.item() <= 2.0
    result.total.backward()
    assert models.gradcam_layer(model)[0].weight.grad.abs().sum() > 0
    assert len(loss.layer._forward_hooks) == 0


def test_default_lambdas_cover_every_loss():
    assert set(DEFAULT_LAMBDAS) == set(GUIDANCE_NAMES)
    assert all(value > 0 for value in DEFAULT_LAMBDAS.values())


def test_input_gradient_loss_base_needs_both_pieces():
    from loss import InputGradientLoss

    with pytest.raises(TypeError, match="abstract"):
        InputGradientLoss()
