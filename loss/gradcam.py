"""Grad-CAM alignment loss (RES, KDD 2022; HINT, ICCV 2019; CYBORG, WACV 2023): the Grad-CAM map of
a conv layer, normalised to [0, 1], is pulled towards the human mask.

    A      = activations of ``layer``                     N x K x h x w
    alpha  = spatial mean of d s_y / d A                  N x K        (create_graph=True)
    cam    = relu(sum_k alpha_k A_k), bilinearly upsampled to H x W, divided by its max + eps
    loss_n = mean(cam over red pixels) + mean(1 - cam over green pixels)

A sample with no red (or no green) pixel contributes 0 for that term; the loss is the mean of
``loss_n`` over samples, in [0, 2]. Only the gradient with respect to the layer's activations
is needed, not with respect to the input, which makes this far cheaper than input-gradient
penalties.

The forward hook that captures ``A`` is registered for the duration of one call and removed
afterwards (also on error), so it never fires during ordinary training forward passes. The loss
can also be taken from the cross-entropy's own forward (``capturing`` around it, then
``penalty_from_forward``): the double backward only crosses the layers after ``layer``, so on
the CE forward it costs little, where a forward of the annotated rows of their own costs a pass
through the whole network (``loss.guided_loss``).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from loss.input_gradients import check_guidance_inputs, differentiable_gradient, labelled_logit, zero_loss

logger = logging.getLogger(__name__)


class GradCAMLoss(nn.Module):
    """Grad-CAM of ``layer`` pulled towards the mask: low on red, high on green.

    Args:
        layer: the module (inside the model passed to ``forward``) whose output Grad-CAM uses,
            e.g. ``models.gradcam_layer(model)``. Its output must be an N x K x h x w tensor and
            it must run exactly once per forward pass.
        eps: added to the per-sample max before dividing, so an all-zero map stays 0.

    ``layer`` is kept as a plain reference, not as a registered submodule, so the loss owns no
    parameters and ``loss.to(...)`` / ``state_dict()`` never touch the model. Build a new loss
    for a copied model (``build_guidance(name, copy)``): the layer belongs to one model.
    """

    # fp16 loss scale for the backward to the activations (``loss.guided.scaling_scores`` sets
    # it for one step); 1 = none.
    score_scale: float = 1.0

    def __init__(self, layer: nn.Module, eps: float = 1e-8) -> None:
        super().__init__()
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be an nn.Module, got {type(layer).__name__}")
        # Bypass nn.Module.__setattr__ so the layer is not registered as our submodule.
        self.__dict__["_layer"] = layer
        self.eps = eps

    @property
    def layer(self) -> nn.Module:
        """The hooked conv layer."""
        return self.__dict__["_layer"]

    @contextlib.contextmanager
    def capturing(self) -> Iterator[list]:
        """Within the block, each forward through ``self.layer`` appends its output (N x K x h x w,
        in the graph) to the yielded list, and the rest of the network gets a copy, so an
        in-place op after the layer (e.g. ReLU(inplace=True)) cannot overwrite the activations
        that are differentiated. The hook is removed on exit, also on error."""
        captured: list[Tensor] = []

        def capture(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
            if not isinstance(output, Tensor):
                raise TypeError(f"Grad-CAM layer {type(module).__name__} must return a tensor, got {type(output).__name__}")
            if not output.requires_grad:
                # Frozen backbone: make the activations a leaf so d s / d A still exists.
                output = output.detach().requires_grad_(True)
            captured.append(output)
            return output.clone()

        handle = self.layer.register_forward_hook(capture)
        try:
            yield captured
        finally:
            handle.remove()

    def cam(self, model: nn.Module, images: Tensor, targets: Tensor) -> Tensor:
        """Differentiable, normalised Grad-CAM of the labelled class.

        Args:
            model: classifier containing ``self.layer``.
            images: N x C x H x W, normalised.
            targets: N long labelled classes.

        Returns:
            N x H x W in [0, 1], part of the autograd graph.
        """
        with torch.enable_grad():
            with self.capturing() as captured:
                logits = model(images)
            return self.cam_from_forward(captured, logits, targets, images.shape[-2:])

    def cam_from_forward(self, captured: list, logits: Tensor, targets: Tensor, size, rows: Optional[Tensor] = None) -> Tensor:
        """Grad-CAM of the ``rows`` (N bool, None: all) of a forward that ran under ``capturing``.

        Args:
            captured: the list ``capturing`` filled (one N x K x h x w tensor).
            logits: N x K, attached to the graph; targets: N long.
            size: (H, W) of the images.

        Returns:
            A x H x W in [0, 1] for the A selected rows, part of the autograd graph. Rows other
            than these get a zero gradient, so the activations' gradient is each row's own as
            long as nothing after the layer mixes rows (train-mode BatchNorm there must run under
            ``loss.batch_statistics.sharing_batch_statistics`` with its gate closed).
        """
        if len(captured) != 1:
            raise RuntimeError(
                f"the Grad-CAM layer ran {len(captured)} times in one forward pass, expected "
                "once; is it part of this model? (build the loss with build_guidance(name, "
                "model) for the model you train)"
            )
        activations = captured[0]
        if activations.dim() != 4:
            raise ValueError(f"Grad-CAM layer output must be N x K x h x w, got shape {tuple(activations.shape)}")
        with torch.enable_grad():
            chosen_logits = logits if rows is None else logits[rows]
            chosen_targets = targets if rows is None else targets[rows]
            scores = labelled_logit(chosen_logits, chosen_targets)
            grads = differentiable_gradient(scores, activations, self.score_scale)
        if rows is not None:
            grads, activations = grads[rows], activations[rows]
        weights = grads.mean(dim=(2, 3), keepdim=True)  # A x K x 1 x 1
        cam = F.relu((weights * activations).sum(dim=1, keepdim=True))  # A x 1 x h x w
        cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)
        cam = cam.squeeze(1)
        return cam / (cam.amax(dim=(1, 2), keepdim=True) + self.eps)

    def penalty_from_cam(self, cam: Tensor, masks: Tensor) -> Tensor:
        """Mean over rows of (mean cam on red + mean (1 - cam) on green); cam and masks A x H x W."""
        masks = masks.to(device=cam.device)
        red = (masks == 1).to(cam.dtype)
        green = (masks == -1).to(cam.dtype)
        red_term = (red * cam).sum(dim=(1, 2)) / red.sum(dim=(1, 2)).clamp(min=1.0)
        green_term = (green * (1.0 - cam)).sum(dim=(1, 2)) / green.sum(dim=(1, 2)).clamp(min=1.0)
        return (red_term + green_term).mean()

    def penalty_from_forward(self, captured: list, logits: Tensor, targets: Tensor, masks: Tensor, annotated: Tensor) -> Tensor:
        """The loss on the ``annotated`` rows (N bool) of a forward that ran under ``capturing``
        (``logits`` N x K, ``targets`` N, ``masks`` N x H x W): what ``forward`` computes on those
        rows, without a forward of their own (``loss.guided_loss``'s shared forward)."""
        check_guidance_inputs(logits.new_empty(masks.shape[0], 1, *masks.shape[1:]), targets, masks)
        cam = self.cam_from_forward(captured, logits, targets, masks.shape[-2:], rows=annotated)
        return self.penalty_from_cam(cam, masks[annotated])

    def forward(self, model: nn.Module, images: Tensor, targets: Tensor, masks: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            model: classifier containing ``self.layer`` (eval mode recommended).
            images: N x C x H x W annotated samples, normalised.
            targets: N long labelled classes.
            masks: N x H x W in {-1, 0, +1} (+1 red, -1 green).

        Returns:
            Scalar in [0, 2]: mean over samples of (mean cam on red + mean (1 - cam) on green).
            Differentiable w.r.t. the parameters.
        """
        check_guidance_inputs(images, targets, masks)
        if images.shape[0] == 0:
            return zero_loss(model, images)
        return self.penalty_from_cam(self.cam(model, images, targets), masks)

    def extra_repr(self) -> str:
        return f"layer={type(self.layer).__name__}, eps={self.eps}"
