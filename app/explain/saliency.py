"""Saliency maps for display: where a model looks when it scores an image's class.

Thin wrappers around captum's attribution methods, reduced to one `H x W` map per image in
[0, 1]. These maps are for showing to the user only: captum takes its gradients without
`create_graph`, so nothing here can train a model (the guidance losses in `loss/` compute
their own differentiable input gradients).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from captum.attr import (
    DeepLift,
    GradientShap,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import nn

from app.explain.options import DEFAULT_SALIENCY_METHOD, SALIENCY_METHODS
from models import finer_gradcam_layer, gradcam_layer

SALIENCY_LABELS = {
    "fine_gradcam": "Fine Grad-CAM (a stage earlier, times the gradient)",
    "occlusion": "Occlusion (score drop when a patch is hidden)",
    "gradcam": "Grad-CAM",
    "gradcam_plus_plus": "Grad-CAM++",
    "saliency": "Gradient (vanilla saliency)",
    "smoothgrad": "SmoothGrad (gradients of noisy copies)",
    "integrated_gradients": "Integrated Gradients",
    "deeplift": "DeepLIFT",
    "gradient_shap": "GradientSHAP",
}

# A map is scaled by this quantile of its values (not its max), so that a few extreme pixels
# do not leave the rest of the map black; values above it are clipped to 1.
NORMALISE_QUANTILE = 0.99
# GradientSHAP: number of random baselines (zeros plus noise of this std, in normalised units),
# and the seed that makes the displayed map the same every time.
SHAP_BASELINES = 8
SHAP_NOISE_STD = 0.1
SHAP_SEED = 0
# SmoothGrad: noisy copies per image and the noise's std as a share of the image's value range.
SMOOTHGRAD_SAMPLES = 8
SMOOTHGRAD_STDEV = 0.15
# Occlusion: a square patch of this share of the image side slides with half its side as stride;
# each position costs one forward per image.
OCCLUSION_WINDOW = 0.125


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map of `maps` (`N x H x W`, non-negative) to [0, 1].

    Each map is divided by its 99th percentile (its max when that percentile is 0, e.g. for a
    map with a few non-zero pixels) and clipped to [0, 1]. Negative values and NaN count as
    0; an all-zero map stays all zero. Returns float32 on the same device.
    """
    flat = torch.nan_to_num(maps.detach().float().flatten(1), nan=0.0, posinf=0.0, neginf=0.0)
    flat = flat.clamp(min=0.0)
    if flat.shape[1] == 0:
        return flat.reshape(maps.shape)
    scale = torch.quantile(flat, NORMALISE_QUANTILE, dim=1, keepdim=True)
    peak = flat.amax(dim=1, keepdim=True)
    scale = torch.where(scale > 0, scale, peak)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (flat / scale).clamp(0.0, 1.0).reshape(maps.shape)


def _gradcam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: nn.Module):
    """Grad-CAM of `layer`, ReLU'd and upsampled bilinearly to the image size: `N x H x W`."""
    cam = LayerGradCam(model, layer).attribute(images, target=targets, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(images.shape[-2:]), interpolate_mode="bilinear")
    return cam.sum(dim=1)  # N x 1 x H x W -> N x H x W


def _scores_and_activations(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """The summed target scores (a scalar) and `layer`'s output (`N x C x h x w`) of one forward."""
    captured = {}

    def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        captured["activations"] = output

    handle = layer.register_forward_hook(keep)
    try:
        scores = model(images).gather(1, targets.view(-1, 1)).sum()
    finally:
        handle.remove()
    return scores, captured["activations"]


def _gradcam_plus_plus(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018) of `layer`: `N x H x W` >= 0.

    Each channel is weighted by its positive gradients, each position by
    `g^2 / (2 g^2 + sum_ij A g^3)` (the closed form with the exponential's first-order
    gradients), so several separate regions of one class each light up instead of the largest.
    """
    scores, activations = _scores_and_activations(model, images, targets, layer)
    (gradients,) = torch.autograd.grad(scores, activations)
    squared, cubed = gradients.pow(2), gradients.pow(3)
    denominator = 2 * squared + (activations * cubed).sum(dim=(2, 3), keepdim=True)
    alpha = squared / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    weights = (alpha * gradients.clamp_min(0)).sum(dim=(2, 3), keepdim=True)
    cam = (weights * activations).sum(dim=1, keepdim=True).clamp_min(0)
    return LayerAttribution.interpolate(cam, tuple(images.shape[-2:]), interpolate_mode="bilinear").sum(dim=1)


def _fine_gradcam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Grad-CAM of `layer` (by default the stage before the last, `models.finer_gradcam_layer`:
    twice the resolution) times the input gradient's magnitude, each scaled to peak 1: `N x H x W` >= 0.

    One forward and one backward. The coarse last-stage Grad-CAM spreads a small stamp over a
    quarter of a 32 px image; a stage earlier and gated by the gradient (as Guided Grad-CAM gates
    by guided backpropagation) it stays on the stamp (docs/discovery.md).
    """
    scores, activations = _scores_and_activations(model, images, targets, layer)
    layer_gradients, input_gradients = torch.autograd.grad(scores, [activations, images])
    weights = layer_gradients.mean(dim=(2, 3), keepdim=True)
    cam = (weights * activations).sum(dim=1, keepdim=True).clamp_min(0)
    cam = LayerAttribution.interpolate(cam, tuple(images.shape[-2:]), interpolate_mode="bilinear")[:, 0]
    gradient = input_gradients.abs().sum(dim=1)
    return _peak_scaled(cam.detach()) * _peak_scaled(gradient)


def _peak_scaled(maps: torch.Tensor) -> torch.Tensor:
    """Each of `N x H x W` maps divided by its maximum (an all-zero map stays zero)."""
    return maps / maps.flatten(1).amax(1).clamp_min(1e-30).view(-1, 1, 1)


def _occlusion(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The target score's drop when a square patch (`OCCLUSION_WINDOW` of the side, the
    normalised mean, i.e. zeros) hides each place: `N x H x W` >= 0 (rises count as 0)."""
    side = max(2, round(OCCLUSION_WINDOW * images.shape[-1]))
    stride = max(1, side // 2)
    attributions = Occlusion(model).attribute(
        images, target=targets, sliding_window_shapes=(images.shape[1], side, side), strides=(images.shape[1], stride, stride)
    )
    return attributions.sum(dim=1).clamp_min(0)


def _smoothgrad(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): |gradient| averaged over `SMOOTHGRAD_SAMPLES` noisy
    copies (noise std `SMOOTHGRAD_STDEV` x the batch's value range), seeded like GradientSHAP."""
    stdev = SMOOTHGRAD_STDEV * float(images.detach().max() - images.detach().min())
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(SHAP_SEED)
        return NoiseTunnel(Saliency(model)).attribute(
            images, target=targets, nt_type="smoothgrad", nt_samples=SMOOTHGRAD_SAMPLES, stdevs=stdev, abs=True
        )


def _gradient_shap(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, n_samples: int):
    """GradientSHAP against noisy black (zero) baselines, seeded so repeated calls agree.

    captum draws its random numbers from torch's and numpy's global generators; both are
    restored afterwards so the caller's random streams (e.g. data shuffling) are untouched.
    """
    generator = torch.Generator().manual_seed(SHAP_SEED)
    baselines = SHAP_NOISE_STD * torch.randn((SHAP_BASELINES, *images.shape[1:]), generator=generator).to(
        images.device, images.dtype
    )
    devices = [images.device] if images.device.type == "cuda" else []
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(SHAP_SEED)
            np.random.seed(SHAP_SEED)
            return GradientShap(model).attribute(images, baselines=baselines, target=targets, n_samples=n_samples)
    finally:
        np.random.set_state(numpy_state)


def _raw_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    layer: nn.Module | None,
    n_steps: int,
    internal_batch_size: int,
) -> torch.Tensor:
    """Unnormalised maps `N x H x W` (non-negative) of one chunk.

    `internal_batch_size` caps how many interpolated images Integrated Gradients runs at once.
    """
    if method in ("gradcam", "gradcam_plus_plus"):
        chosen = gradcam_layer(model) if layer is None else layer
        if method == "gradcam":
            return _gradcam(model, images, targets, chosen)
        return _gradcam_plus_plus(model, images, targets, chosen)
    if method == "occlusion":
        return _occlusion(model, images, targets)
    if method == "fine_gradcam":
        return _fine_gradcam(model, images, targets, layer if layer is not None else finer_gradcam_layer(model, images.detach()))
    if method == "saliency":
        attributions = Saliency(model).attribute(images, target=targets, abs=True)
    elif method == "smoothgrad":
        attributions = _smoothgrad(model, images, targets)
    elif method == "integrated_gradients":
        attributions = IntegratedGradients(model).attribute(
            images,
            baselines=torch.zeros_like(images),
            target=targets,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
        )
    elif method == "deeplift":
        attributions = DeepLift(model).attribute(images, baselines=torch.zeros_like(images), target=targets)
    else:  # gradient_shap
        attributions = _gradient_shap(model, images, targets, n_samples=n_steps)
    return attributions.abs().sum(dim=1)  # one value per pixel: N x C x H x W -> N x H x W


def saliency_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    method: str = DEFAULT_SALIENCY_METHOD,
    *,
    layer: nn.Module | None = None,
    n_steps: int = 16,
    batch_size: int = 32,
    normalise: bool = True,
) -> torch.Tensor:
    """Saliency of each image for its target class, for display.

    images: `N x 3 x H x W` normalised, on the model's device. targets: `N` class indices.
    method: one of `SALIENCY_METHODS`; `layer` overrides the layer of Grad-CAM and Grad-CAM++
    (default `gradcam_layer(model)`) and of fine Grad-CAM (default `finer_gradcam_layer`, found
    once per call); `n_steps` is the number of integration steps (Integrated
    Gradients) or samples (GradientSHAP); images are processed `batch_size` at a time.
    Returns `N x H x W` float32 in [0, 1] on the CPU (see `normalise_maps`); with
    `normalise=False` the raw non-negative maps (any scale), e.g. to find a map's maximum, which
    the clipped display map ties at 1 over its top percent.

    The model runs in eval mode; each module's train/eval mode and every parameter's `.grad`
    are restored afterwards, so this can be called between optimizer steps.
    """
    if method not in SALIENCY_METHODS:
        raise ValueError(f"unknown saliency method {method!r}; choose one of: {', '.join(SALIENCY_METHODS)}")
    if images.dim() != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if len(targets) != len(images):
        raise ValueError(f"{len(images)} images but {len(targets)} targets")
    if len(images) == 0:
        return torch.zeros((0, *images.shape[-2:]), dtype=torch.float32)
    if batch_size < 1 or n_steps < 1:
        raise ValueError("batch_size and n_steps must be at least 1")

    modes = [(module, module.training) for module in model.modules()]
    grads = [(param, param.grad) for param in model.parameters()]
    model.eval()
    if method == "fine_gradcam" and layer is None:
        layer = finer_gradcam_layer(model, images[:1].detach())  # one probe forward per call, not per chunk
    chunks = []
    try:
        with torch.enable_grad(), warnings.catch_warnings():
            # DeepLift warns on every call that it sets (and later removes) hooks.
            warnings.filterwarnings("ignore", message=r"Setting forward, backward hooks")
            for start in range(0, len(images), batch_size):
                chunk = images[start : start + batch_size].detach().clone().requires_grad_()
                chunk_targets = targets[start : start + batch_size].to(images.device)
                raw = _raw_maps(model, chunk, chunk_targets, method, layer, n_steps, batch_size)
                chunks.append(raw.detach().float().cpu())
    finally:
        for module, training in modes:
            module.training = training
        # captum differentiates with respect to the inputs only, so no parameter gradient
        # should appear; restoring them anyway guarantees the optimizer sees what it left.
        for param, grad in grads:
            param.grad = grad
    raw = torch.cat(chunks)
    return normalise_maps(raw) if normalise else torch.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
