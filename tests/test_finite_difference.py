"""Tests for loss/finite_difference.py and loss/frozen_gates.py: the penalty's parameter gradient by
first-order passes against the exact double backward (``guided_loss(..., penalty_gradient=...)``)."""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from loss import PENALTY_GRADIENTS, PunisherLoss, RRRLoss, check_penalty_gradient, guided_loss
from loss.finite_difference import penalty_and_direction, perturbation
from loss.frozen_gates import is_piecewise_linear, recording_gates, replaying_gates
from models import build_model

K = 4


def batch(rows: int, size: int, seed: int = 0, annotated_rows: int = 2):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(rows, 3, size, size, generator=generator)
    targets = torch.randint(0, K, (rows,), generator=generator)
    masks = torch.zeros(rows, size, size)
    masks[:, : size // 3, : size // 3] = 1.0
    masks[:, size // 2 :, size // 2 :] = -1.0
    has_mask = torch.zeros(rows, dtype=torch.bool)
    has_mask[torch.randperm(rows, generator=generator)[:annotated_rows]] = True
    return images, targets, masks, has_mask


def penalty_gradient(model, guidance, images, targets, masks, has_mask, how, **kwargs):
    """The penalty's value and its parameter gradient alone (ce_weight 0), flattened."""
    model.zero_grad(set_to_none=True)
    result = guided_loss(model, images, targets, masks, has_mask, guidance, 1.0, ce_weight=0.0, penalty_gradient=how, **kwargs)
    result.total.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return float(result.guidance), grads


class SmoothNet(nn.Module):
    """conv -> BatchNorm -> Softplus -> pool -> linear: no kink anywhere."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.Softplus())
        self.head = nn.Linear(6, K)

    def forward(self, images):
        return self.head(self.body(images).mean(dim=(2, 3)))


def small_cnn():
    torch.manual_seed(0)
    return build_model("small_cnn", K)


@pytest.mark.parametrize("guidance", [RRRLoss(), PunisherLoss()], ids=["rrr", "punisher"])
@pytest.mark.parametrize("annotated_rows, shared", [(2, False), (12, True)], ids=["second-forward", "shared-forward"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_double_backward_on_a_relu_network(guidance, annotated_rows, shared, seed):
    """ReLU and max-pooling, train-mode BatchNorm: with the gates replayed the difference is the
    exact one; measured cosine 1.0000 and norm within 1e-4 in float32 (docs/step_cost.md)."""
    model = small_cnn().train()
    images, targets, masks, has_mask = batch(12, 16, seed, annotated_rows)
    state = copy.deepcopy(model.state_dict())
    value, exact = penalty_gradient(model, guidance, images, targets, masks, has_mask, "exact", shared_forward=shared)
    model.load_state_dict(state)
    approx_value, approx = penalty_gradient(
        model, guidance, images, targets, masks, has_mask, "finite_difference", shared_forward=shared
    )
    assert approx_value == pytest.approx(value, rel=1e-5)
    assert F.cosine_similarity(exact, approx, dim=0) > 0.999
    assert approx.norm() == pytest.approx(exact.norm(), rel=1e-2)


@pytest.mark.parametrize("guidance", [RRRLoss(), PunisherLoss(clip=None)], ids=["rrr", "punisher"])
def test_networks_with_other_activations_get_the_exact_gradient(guidance):
    """No gate to replay (Softplus here; Hardswish, SiLU with stochastic depth in the model
    zoo, where the difference measured cosine -0.03-0.52): the double backward is taken."""
    model = SmoothNet().train()
    images, targets, masks, has_mask = batch(6, 8, 0, 3)
    value, exact = penalty_gradient(model, guidance, images, targets, masks, has_mask, "exact")
    approx_value, approx = penalty_gradient(model, guidance, images, targets, masks, has_mask, "finite_difference")
    assert approx_value == value
    assert torch.equal(approx, exact)


@pytest.mark.parametrize("name, expected", [("small_cnn", True), ("resnet18", True), ("mobilenet_v3_small", False)])
def test_which_networks_are_piecewise_linear(name, expected):
    assert is_piecewise_linear(build_model(name, K)) is expected
    assert not is_piecewise_linear(SmoothNet())


def test_penalty_on_the_painted_rows_as_the_exact_path_has_it():
    """With counterexamples the penalty is on the painted rows; their own forward gives the
    score at x, and the result still matches the double backward."""
    model = small_cnn().train()
    images, targets, masks, has_mask = batch(12, 16, 2, 3)
    counterexamples = images.flip(0)
    state = copy.deepcopy(model.state_dict())
    value, exact = penalty_gradient(model, RRRLoss(), counterexamples, targets, masks, has_mask, "exact", painted=images)
    model.load_state_dict(state)
    approx_value, approx = penalty_gradient(
        model, RRRLoss(), counterexamples, targets, masks, has_mask, "finite_difference", painted=images
    )
    assert approx_value == pytest.approx(value, rel=1e-5)
    assert F.cosine_similarity(exact, approx, dim=0) > 0.999


def test_without_replayed_gates_the_difference_is_far_off():
    """Why loss.frozen_gates exists: a kink crossed by the step costs a finite jump in the
    parameter gradient, divided by the step (measured cosine 0.1-0.8 on the small CNN)."""
    model = small_cnn().train()
    images, targets, masks, has_mask = batch(12, 16, 0, 12)
    exact_value, exact = penalty_gradient(model, PunisherLoss(), images, targets, masks, has_mask, "exact")
    import loss.guided as guided_module

    original = guided_module.replaying_gates
    guided_module.replaying_gates = lambda *args, **kwargs: torch.enable_grad()  # a no-op context
    try:
        _, unfrozen = penalty_gradient(model, PunisherLoss(), images, targets, masks, has_mask, "finite_difference")
    finally:
        guided_module.replaying_gates = original
    assert F.cosine_similarity(exact, unfrozen, dim=0) < 0.99


def test_running_averages_see_the_cross_entropy_forward_only():
    model = small_cnn().train()
    images, targets, masks, has_mask = batch(12, 16, 0, 3)
    reference = copy.deepcopy(model)
    guided_loss(model, images, targets, masks, has_mask, RRRLoss(), 1.0, penalty_gradient="finite_difference")
    with torch.no_grad():
        reference(images)
    for ours, theirs in zip(model.modules(), reference.modules()):
        if isinstance(ours, nn.BatchNorm2d):
            assert torch.allclose(ours.running_mean, theirs.running_mean, atol=1e-6)
            assert torch.allclose(ours.running_var, theirs.running_var, atol=1e-5)


def test_replayed_gates_reproduce_the_forward_and_are_linear_in_the_input():
    model = small_cnn().eval()
    images = torch.randn(4, 3, 16, 16)
    with recording_gates(model) as gates:
        logits = model(images)
    rows = torch.tensor([True, False, True, True])
    shift = torch.randn(3, 3, 16, 16)
    with torch.no_grad(), replaying_gates(model, gates, rows):
        same = model(images[rows])
    with torch.no_grad(), replaying_gates(model, gates, rows):
        once = model(images[rows] + shift)
    with torch.no_grad(), replaying_gates(model, gates, rows):
        twice = model(images[rows] + 2 * shift)
    assert torch.allclose(same, logits[rows].detach(), atol=1e-5)
    assert torch.allclose(twice - once, once - same, atol=1e-4)  # one linear piece
    assert type(model).forward is not None and all("forward" not in vars(m) for m in model.modules())


def test_direction_is_the_penalty_gradient_and_rows_without_it_stay_put():
    grads = torch.randn(3, 3, 4, 4)
    masks = torch.zeros(3, 4, 4)
    masks[0, :2] = 1.0
    masks[1, 2:] = 1.0  # row 2: no red pixel, no RRR gradient
    value, direction = penalty_and_direction(RRRLoss().penalty_from_gradients, grads, masks)
    red = (masks == 1).float().unsqueeze(1)
    assert value == pytest.approx(float((red * grads).pow(2).sum(dim=(1, 2, 3)).mean()))
    assert torch.allclose(direction, 2 * red * grads / 3)
    images = torch.randn(3, 3, 4, 4)
    shifted, weights = perturbation(images, direction, step=0.1)
    assert torch.equal(shifted[2], images[2]) and weights[2] == 0
    moved = (shifted[0] - images[0]).norm()
    assert moved == pytest.approx(0.1 * float(images[0].norm()), rel=1e-4)
    assert weights[0] == pytest.approx(float(direction[0].norm() / moved), rel=1e-4)


def test_names_are_checked():
    assert PENALTY_GRADIENTS == ("exact", "finite_difference")
    check_penalty_gradient("exact")
    with pytest.raises(ValueError, match="penalty gradient"):
        check_penalty_gradient("approximate")
    images, targets, masks, has_mask = batch(4, 8)
    with pytest.raises(ValueError, match="penalty gradient"):
        guided_loss(small_cnn(), images, targets, masks, has_mask, RRRLoss(), 1.0, penalty_gradient="fd")


def test_the_training_step_and_the_config_carry_the_choice():
    """``TrainingStep(penalty_gradient=...)`` (what the trainer builds from
    ``TrainConfig.penalty_gradient``): one step either way moves the weights alike."""
    from app.engine.config import TrainConfig
    from app.engine.guided_step import TrainingStep
    from app.errors import UserError

    assert TrainConfig().penalty_gradient == "exact"
    assert TrainConfig(penalty_gradient="finite_difference").penalty_gradient == "finite_difference"
    with pytest.raises(UserError, match="penalty_gradient"):
        TrainConfig(penalty_gradient="fast")
    images, targets, masks, has_mask = batch(12, 16, 0, 4)
    updated = {}
    for how in PENALTY_GRADIENTS:
        model = small_cnn().train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        step = TrainingStep(model, RRRLoss(), 100.0, device=torch.device("cpu"), penalty_gradient=how)
        step(images, targets, masks, has_mask, optimizer)
        updated[how] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.allclose(updated["exact"], updated["finite_difference"], atol=1e-5)
    with pytest.raises(ValueError, match="penalty gradient"):
        TrainingStep(small_cnn(), RRRLoss(), 1.0, device=torch.device("cpu"), penalty_gradient="fd")


@pytest.mark.parametrize("guidance", [RRRLoss(), PunisherLoss()], ids=["rrr", "punisher"])
def test_under_bf16_autocast_as_close_to_float32_as_the_exact_path(guidance):
    """Mixed precision: the shift is then as large as the image (exact with the gates replayed),
    so bfloat16's roundings do not swamp the difference. Measured on small_cnn: cosine to the
    float32 gradient 0.998 / 0.966 (RRR / Punisher), the exact bf16 path's 0.998 / 0.966; at the
    float32 step of 1e-2 it was 0.853 / 0.753."""
    from app.engine.amp import AmpPolicy

    model = small_cnn().train()
    images, targets, masks, has_mask = batch(16, 32, 0, 4)
    state = copy.deepcopy(model.state_dict())
    _, reference = penalty_gradient(model, guidance, images, targets, masks, has_mask, "exact")
    cosines = {}
    for how in PENALTY_GRADIENTS:
        model.load_state_dict(state)
        with AmpPolicy("bf16", "cpu").autocast():
            _, mixed = penalty_gradient(model, guidance, images, targets, masks, has_mask, how)
        cosines[how] = float(F.cosine_similarity(reference, mixed.float(), dim=0))
    assert cosines["finite_difference"] > cosines["exact"] - 0.02
    assert cosines["finite_difference"] > 0.9


@pytest.mark.cuda
@pytest.mark.parametrize("guidance", [RRRLoss(), PunisherLoss()], ids=["rrr", "punisher"])
def test_matches_the_double_backward_on_the_gpu(guidance):
    """cuDNN's kernels (resnet18, 64 px, train mode, both forwards): the same agreement as on the CPU."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model("resnet18", K).to(device).train()
    images, targets, masks, has_mask = (t.to(device) for t in batch(16, 64, 0, 4))
    state = copy.deepcopy(model.state_dict())
    value, exact = penalty_gradient(model, guidance, images, targets, masks, has_mask, "exact")
    model.load_state_dict(state)
    approx_value, approx = penalty_gradient(model, guidance, images, targets, masks, has_mask, "finite_difference")
    assert approx_value == pytest.approx(value, rel=1e-4)
    assert F.cosine_similarity(exact, approx, dim=0) > 0.999
