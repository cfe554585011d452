"""train_one_epoch / evaluate: metric dicts, early stop, divergence."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from app.engine.loops import TrainingDiverged, evaluate, train_one_epoch
from datasets import ImageFolderData
from loss import build_guidance
from models import build_model, model_spec


@pytest.fixture
def data(image_folder):
    spec = model_spec("small_cnn")
    return ImageFolderData(image_folder, 32, spec.mean, spec.std)


def test_training_lowers_the_loss_and_reports_metrics(data):
    torch.manual_seed(0)
    model = build_model("small_cnn", 2)
    loader = DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    calls = []
    history = [
        train_one_epoch(model, loader, optimizer, device=torch.device("cpu"), on_batch=lambda *a: calls.append(a))
        for _ in range(6)
    ]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["accuracy"] == 1.0  # the classes differ by a bright square: trivially learnable
    metrics = history[-1]
    assert metrics["n_images"] == 24 and metrics["n_annotated"] == 0 and metrics["stopped"] == 0.0
    assert len(calls) == 6 * 3 and calls[0][:2] == (1, 3)


class _Constant(nn.Module):
    """Logits [2, 0] for every image, whatever it shows."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, images):
        return torch.tensor([2.0, 0.0]).repeat(images.shape[0], 1) + self.dummy


def test_evaluate_matches_hand_computed_loss_and_accuracy(data):
    result = evaluate(_Constant(), DataLoader(data, batch_size=5), device=torch.device("cpu"), classes=data.classes)
    # 12 "cat" (class 0, predicted) and 12 "dog" images.
    expected_loss = 0.5 * (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2)))
    assert result["n_images"] == 24
    assert result["accuracy"] == 0.5
    assert math.isclose(result["loss"], expected_loss, rel_tol=1e-6)
    assert result["per_class_accuracy"] == {"cat": 1.0, "dog": 0.0}


def test_should_stop_ends_the_epoch_before_the_next_batch(data):
    model = build_model("small_cnn", 2)
    loader = DataLoader(data, batch_size=4)
    polls = []

    def should_stop():
        polls.append(1)
        return len(polls) > 2

    metrics = train_one_epoch(
        model, loader, torch.optim.SGD(model.parameters(), lr=0.01), device=torch.device("cpu"), should_stop=should_stop
    )
    assert metrics["stopped"] == 1.0 and metrics["n_images"] == 8


def test_guided_epoch_counts_annotated_images(image_folder, tmp_path):
    import numpy as np

    from datasets import MaskStore

    spec = model_spec("small_cnn")
    store = MaskStore(tmp_path / "masks")
    data = ImageFolderData(image_folder, 32, spec.mean, spec.std, masks_dir=tmp_path / "masks")
    for relpath in data.relpaths[:5]:
        store.save(relpath, np.ones((32, 32), dtype=np.int8))
    model = build_model("small_cnn", 2)
    metrics = train_one_epoch(
        model,
        DataLoader(data, batch_size=8),
        torch.optim.Adam(model.parameters()),
        device=torch.device("cpu"),
        guidance=build_guidance("punisher", model),
        lam=1.0,
    )
    assert metrics["n_annotated"] == 5 and metrics["guidance"] > 0


class _Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 32 * 32, 2)

    def forward(self, images):
        return self.linear(images.flatten(1)) * float("inf")


def test_non_finite_loss_raises_a_clear_error(data):
    model = _Exploding()
    before = model.linear.weight.clone()
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        train_one_epoch(
            model, DataLoader(data, batch_size=8), torch.optim.SGD(model.parameters(), lr=0.1), device=torch.device("cpu")
        )
    assert torch.equal(model.linear.weight, before)


def test_evaluate_on_empty_loader_is_nan_not_crash():
    result = evaluate(build_model("small_cnn", 2), [], device=torch.device("cpu"))
    assert result["n_images"] == 0 and math.isnan(result["accuracy"])


def _shortcut_batches(seed: int, batches: int = 30, n: int = 32):
    """Batches where a clean corner block (rows 0-1, cols 0-1) gives the label away and a noisy
    block (rows 4-7, cols 4-7) carries it honestly; every image has the corner painted red."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batches):
        targets = torch.randint(0, 2, (n,), generator=generator)
        sign = (targets.float() * 2 - 1).view(n, 1, 1, 1)
        images = torch.randn(n, 3, 8, 8, generator=generator) * 0.1
        images[:, :, :2, :2] = sign
        images[:, :, 4:, 4:] = 0.5 * sign + torch.randn(n, 3, 4, 4, generator=generator)
        masks = torch.zeros(n, 8, 8)
        masks[:, :2, :2] = 1.0
        out.append((images, targets, masks, torch.ones(n, dtype=torch.bool)))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_counterexamples_stop_the_model_reading_the_red_region(seed):
    weight_share = {}
    for counterexamples in (False, True):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            train_one_epoch(
                model, _shortcut_batches(seed), optimizer, device=torch.device("cpu"), counterexamples=counterexamples
            )
        weights = model[1].weight.detach().view(2, 3, 8, 8)
        red = weights[:, :, :2, :2].abs().mean()
        honest = weights[:, :, 4:, 4:].abs().mean()
        weight_share[counterexamples] = float(red / honest)
    # Plain training leans on the clean corner; with its pixels swapped between images it
    # carries no label information and its weights stay near their random start.
    assert weight_share[False] > 1.0
    assert weight_share[True] < 0.5 * weight_share[False]


def test_counterexamples_reach_the_loss_with_the_painted_batch(monkeypatch):
    import app.engine.guided_step as guided_step  # where the loop's TrainingStep calls guided_loss

    seen = []
    real = guided_step.guided_loss

    def spy(model, images, targets, masks, has_mask, guidance, lam, painted=None, **weights):
        seen.append((images, painted))
        return real(model, images, targets, masks, has_mask, guidance, lam, painted=painted, **weights)

    monkeypatch.setattr(guided_step, "guided_loss", spy)
    batches = _shortcut_batches(0, batches=2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_one_epoch(model, batches, optimizer, device=torch.device("cpu"), counterexamples=True)
    for (images, painted), batch in zip(seen, batches, strict=True):
        assert torch.equal(painted, batch[0])  # the penalty's rows as painted
        assert not torch.equal(images[:, :, :2, :2], batch[0][:, :, :2, :2])  # CE: swapped corners
        assert torch.equal(images[:, :, 2:, 2:], batch[0][:, :, 2:, 2:])
    seen.clear()
    train_one_epoch(model, batches, optimizer, device=torch.device("cpu"), counterexamples=False)
    assert all(painted is None for _, painted in seen)
