"""Base class of the guidance losses that penalise input gradients (RRR, Punisher).

Such a loss is two pieces: a per-sample score whose input gradient is penalised
(``score_fn``), and a penalty on those gradients under the mask (``penalty_from_gradients``).
Keeping them apart lets ``loss.guided_loss`` take the gradients from the cross-entropy's own
forward when most of a batch is annotated (``penalty_from_forward``), instead of running a
second forward: one double backward through the batch instead of a plain step plus a double
backward.
"""

from __future__ import annotations

import abc
from typing import Optional

from torch import Tensor, nn

from loss.input_gradients import check_guidance_inputs, differentiable_gradient, input_gradients, zero_loss


class InputGradientLoss(nn.Module, abc.ABC):
    """A guidance loss ``penalty(d score / d x, mask)``; subclasses define both pieces (the base
    cannot be instantiated)."""

    # fp16 loss scale for the input-gradient backward (``loss.guided.scaling_scores`` sets it
    # for one step); 1 = none.
    score_scale: float = 1.0

    @abc.abstractmethod
    def score_fn(self, logits: Tensor, targets: Optional[Tensor]) -> Tensor:
        """Per-sample scores N from logits N x K (and targets N) whose input gradient counts."""

    @abc.abstractmethod
    def penalty_from_gradients(self, grads: Tensor, masks: Tensor) -> Tensor:
        """Scalar penalty from input gradients N x C x H x W and masks N x H x W in {-1, 0, +1}."""

    def forward(self, model: nn.Module, images: Tensor, targets: Tensor, masks: Tensor) -> Tensor:
        """The penalty on ``images`` (N x C x H x W annotated samples, normalised), by a forward of
        their own; ``targets`` N long, ``masks`` N x H x W. Differentiable w.r.t. the parameters."""
        check_guidance_inputs(images, targets, masks)
        if images.shape[0] == 0:
            return zero_loss(model, images)
        _, grads = input_gradients(model, images, self.score_fn, targets, self.score_scale)
        return self.penalty_from_gradients(grads, masks.to(grads.device))

    def penalty_from_forward(self, inputs: Tensor, logits: Tensor, targets: Tensor, masks: Tensor, annotated: Tensor) -> Tensor:
        """The penalty on the ``annotated`` rows of a forward that has already run.

        Args:
            inputs: N x C x H x W, the leaf (``requires_grad``) the logits were computed from.
            logits: N x K, still attached to the graph.
            targets: N long; masks: N x H x W; annotated: N bool, at least one True.

        With train-mode BatchNorm the rows share statistics, so an annotated row's gradient also
        carries the (order 1/N) terms through the other rows' statistics, unless the forward ran
        under ``loss.batch_statistics.sharing_batch_statistics`` and this is called with its gate
        closed (``loss.guided_loss`` does that). Returns a scalar attached to the graph.
        """
        check_guidance_inputs(inputs, targets, masks)
        scores = self.score_fn(logits[annotated], targets[annotated])
        grads = differentiable_gradient(scores, inputs, self.score_scale)
        return self.penalty_from_gradients(grads[annotated], masks.to(grads.device)[annotated])
