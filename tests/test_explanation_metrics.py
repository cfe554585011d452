"""Saliency-vs-mask measures, checked on hand-made maps."""

import torch
from torch import nn

from app.explain.explanation_metrics import alignment_score, explanation_iou, gradient_saliency, mass_share


def test_mass_share_counts_red_and_green_mass():
    saliency = torch.tensor([[[1.0, 3.0], [0.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    masks = torch.tensor([[[1.0, 0.0], [0.0, -1.0]], [[1.0, -1.0], [0.0, 0.0]]])
    red, green = mass_share(saliency, masks)
    assert torch.allclose(red, torch.tensor([1 / 8, 0.0]))
    assert torch.allclose(green, torch.tensor([4 / 8, 0.0]))  # all-zero map: 0, not NaN


def test_alignment_score_extremes():
    masks = torch.tensor([[[1.0, -1.0], [0.0, 0.0]]])
    perfect = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])  # salient on green, not on red
    wrong = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # salient on red, not on green
    assert torch.allclose(alignment_score(perfect, masks), torch.tensor([2 / 4]))
    assert torch.allclose(alignment_score(wrong, masks), torch.tensor([-2 / 4]))


def test_explanation_iou_against_green():
    saliency = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    masks = torch.tensor([[[-1.0, 0.0], [-1.0, 0.0]]])
    precision, recall, iou = explanation_iou(saliency, masks)
    assert torch.allclose(precision, torch.tensor([0.5]))
    assert torch.allclose(recall, torch.tensor([0.5]))
    assert torch.allclose(iou, torch.tensor([1 / 3]))


def test_gradient_saliency_of_linear_model_is_weight_row():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 2 * 2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.arange(16, dtype=torch.float32).view(2, 8) - 5)
    images = torch.randn(1, 2, 2, 2)
    saliency = gradient_saliency(model, images, torch.tensor([1]))
    expected = model[1].weight[1].view(2, 2, 2).abs().sum(0)
    assert torch.allclose(saliency[0], expected)
    assert all(p.grad is None for p in model.parameters())
