"""Tests for loss/gradcam.py on a tiny conv model whose Grad-CAM is known by hand.

Model: conv(3->4) -> ReLU (the hooked block, output A: N x 4 x H x W) -> global average pool ->
linear(4->K). Then d s_y / d A_k = W_head[y, k] / (H W) everywhere, so alpha_k = W_head[y, k] / (H W)
and cam = relu(sum_k alpha_k A_k).
"""

import numpy as np
import pytest
import torch
from torch import nn

from loss import GradCAMLoss

C, H, W, K, FEATURES = 3, 6, 6, 3, 4


class TinyConv(nn.Module):
    def __init__(self, stride: int = 1, inplace_after: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        if inplace_after:
            # Hook the bare conv; an in-place ReLU then rewrites its output.
            self.block = nn.Conv2d(C, FEATURES, 3, stride=stride, padding=1)
            self.after = nn.ReLU(inplace=True)
        else:
            self.block = nn.Sequential(nn.Conv2d(C, FEATURES, 3, stride=stride, padding=1), nn.ReLU())
            self.after = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(FEATURES, K)

    def forward(self, images):
        return self.head(self.pool(self.after(self.block(images))).flatten(1))


def batch(n: int = 4, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, C, H, W, generator=generator)
    targets = torch.tensor([0, 1, 2, 1, 0][:n])
    return images, targets


def mixed_masks(n: int = 4) -> torch.Tensor:
    masks = torch.zeros(n, H, W)
    masks[0, :3] = 1.0  # red and green
    masks[0, 4:] = -1.0
    masks[1, :, :2] = 1.0  # red only
    masks[2, 2:4, 2:4] = -1.0  # green only
    return masks  # sample 3: no paint


def hand_cam(model: TinyConv, images, targets) -> np.ndarray:
    with torch.no_grad():
        activations = model.block(images).numpy()  # N x F x H x W
    head = model.head.weight.detach().numpy()
    alpha = head[targets.numpy()] / (H * W)  # N x F
    cam = np.maximum((alpha[:, :, None, None] * activations).sum(axis=1), 0.0)
    return cam / (cam.max(axis=(1, 2), keepdims=True) + 1e-8)


def hand_loss(cam: np.ndarray, masks: torch.Tensor) -> float:
    masks = masks.numpy()
    per_sample = []
    for cam_n, mask_n in zip(cam, masks):
        red, green = mask_n == 1, mask_n == -1
        red_term = cam_n[red].mean() if red.any() else 0.0
        green_term = (1.0 - cam_n[green]).mean() if green.any() else 0.0
        per_sample.append(red_term + green_term)
    return float(np.mean(per_sample))


def test_exact_value_on_tiny_conv_model():
    model = TinyConv()
    images, targets = batch()
    masks = mixed_masks()
    loss = GradCAMLoss(model.block)
    cam = hand_cam(model, images, targets)
    assert (cam.max(axis=(1, 2)) > 0.99).all()  # sanity: the maps are not all zero
    np.testing.assert_allclose(loss.cam(model, images, targets).detach().numpy(), cam, atol=1e-6)
    value = loss(model, images, targets, masks)
    assert value.shape == ()
    assert 0.0 <= value.item() <= 2.0
    np.testing.assert_allclose(value.item(), hand_loss(cam, masks), rtol=1e-5)


def test_strided_layer_is_upsampled_to_the_image_size():
    model = TinyConv(stride=2)  # activations 3 x 3, image 6 x 6
    images, targets = batch()
    masks = mixed_masks()
    loss = GradCAMLoss(model.block)
    cam = loss.cam(model, images, targets)
    assert cam.shape == (4, H, W)
    assert cam.min().item() >= 0.0 and cam.max().item() <= 1.0
    np.testing.assert_allclose(cam.detach().amax(dim=(1, 2)).numpy(), 1.0, atol=1e-5)
    value = loss(model, images, targets, masks).item()
    np.testing.assert_allclose(value, hand_loss(cam.detach().numpy(), masks), rtol=1e-5)


def test_zero_when_nothing_is_painted():
    model = TinyConv()
    images, targets = batch()
    assert GradCAMLoss(model.block)(model, images, targets, torch.zeros(4, H, W)).item() == 0.0


def test_gradient_flows_to_the_parameters():
    model = TinyConv()
    images, targets = batch()
    GradCAMLoss(model.block)(model, images, targets, mixed_masks()).backward()
    conv = model.block[0]
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0


def test_one_step_lowers_the_loss():
    model = TinyConv()
    images, targets = batch()
    masks = mixed_masks()
    loss = GradCAMLoss(model.block)
    before = loss(model, images, targets, masks)
    before.backward()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.grad is not None:  # the head's bias does not change the CAM
                parameter -= 0.05 * parameter.grad
    assert loss(model, images, targets, masks).item() < before.item()


def test_hooks_are_removed_after_the_call_and_after_an_error():
    model = TinyConv()
    images, targets = batch()
    loss = GradCAMLoss(model.block)
    loss(model, images, targets, mixed_masks())
    assert len(model.block._forward_hooks) == 0
    with pytest.raises(RuntimeError, match="out of range|index"):
        loss(model, images, torch.tensor([0, 1, 2, K + 5]), mixed_masks())
    assert len(model.block._forward_hooks) == 0


def test_a_layer_outside_the_model_is_reported():
    model, other = TinyConv(), TinyConv()
    images, targets = batch()
    with pytest.raises(RuntimeError, match="ran 0 times"):
        GradCAMLoss(other.block)(model, images, targets, mixed_masks())
    assert len(other.block._forward_hooks) == 0


def test_in_place_op_after_the_layer_is_harmless():
    # Same weights; hooked output rewritten in place vs. a separate ReLU module afterwards.
    images, targets = batch()
    masks = mixed_masks()
    inplace = TinyConv(inplace_after=True)
    reference = TinyConv(inplace_after=True)
    reference.after = nn.ReLU(inplace=False)
    a = GradCAMLoss(inplace.block)(inplace, images, targets, masks)
    b = GradCAMLoss(reference.block)(reference, images, targets, masks)
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-6)
    a.backward()
    assert inplace.block.weight.grad.abs().sum() > 0


def test_frozen_backbone_still_gives_a_loss_for_the_head():
    model = TinyConv()
    for parameter in model.block.parameters():
        parameter.requires_grad_(False)
    images, targets = batch()
    GradCAMLoss(model.block)(model, images, targets, mixed_masks()).backward()
    assert model.head.weight.grad.abs().sum() > 0


def test_the_layer_is_not_a_submodule_of_the_loss():
    model = TinyConv()
    loss = GradCAMLoss(model.block)
    assert loss.layer is model.block
    assert list(loss.parameters()) == [] and loss.state_dict() == {}


def test_empty_batch_gives_a_zero():
    model = TinyConv()
    value = GradCAMLoss(model.block)(model, torch.zeros(0, C, H, W), torch.zeros(0, dtype=torch.long), torch.zeros(0, H, W))
    assert value.item() == 0.0
    value.backward()
