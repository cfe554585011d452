"""Build a guidance loss by name, and a default weight (lambda) for each."""

from __future__ import annotations

import logging
from types import MappingProxyType

from torch import nn

from loss.gradcam import GradCAMLoss
from loss.options import GUIDANCE_NAMES
from loss.punisher import PunisherLoss
from loss.rrr import RRRLoss

logger = logging.getLogger(__name__)

# Default lambda per loss, calibrated on the demo data (small_cnn, Adam 1e-3, 8-10 epochs,
# guidance from epoch 1, decoy-free test accuracy; plain training 0.56-0.59, a model trained
# without swatches 0.83):
#   rrr      all images masked: lam 1 -> 0.67, 10 -> 0.69, 100 -> 0.73; 5 % masked: lam 10 -> 0.58,
#            100 -> 0.55 (0.62 when the annotated images are oversampled), 1000 -> collapse (0.23)
#   gradcam  all masked: lam 0.1 -> 0.65; 5 % masked: 0.1 -> 0.46, 0.3 -> 0.36, 1 -> 0.10 (collapse)
#   punisher 5 % masked: lam 0.01 and 1 both collapse to chance: the green term rewards input-
#            gradient magnitude up to a clip (0.5) that real per-pixel gradients (1e-4..1e-2)
#            never reach, so it is unbounded in practice. Kept small; prefer rrr or gradcam.
#   rrr with counterexamples (the default, loss.counterexamples), app workflow on the demo, 6
#            painted images propagated to all, seeds 0-2 (seed 2 not finished for lam 0 and 1):
#            lam 0 -> 75.2/79.7, 1 -> 76.0, 10 -> 79.7/89.1/78.6, 100 -> 75.8/72.4/73.8 %.
#            So 10: with the shortcut gone from the data, a strong penalty mostly slows learning.
# Penalty sizes for orientation (64 random 32x32 images, fresh / after 20 steps): punisher
# 0.021 / 0.73, rrr 3e-7 / 0.027, gradcam 0.22 / 0.27 (8x8 red mask).
DEFAULT_LAMBDAS = MappingProxyType({"punisher": 0.001, "rrr": 10.0, "gradcam": 0.1})


def build_guidance(name: str, model: nn.Module) -> nn.Module:
    """Return the guidance loss called ``name`` (one of ``GUIDANCE_NAMES``) for ``model``.

    ``"gradcam"`` hooks ``models.gradcam_layer(model)``, so build a new loss for every model
    (e.g. for the copy a fine-tune round trains). Unknown names raise ``ValueError``.
    """
    if name == "punisher":
        return PunisherLoss()
    if name == "rrr":
        return RRRLoss()
    if name == "gradcam":
        # Imported here so that loss/ does not depend on models/ at import time.
        from models import gradcam_layer

        return GradCAMLoss(gradcam_layer(model))
    raise ValueError(f"unknown guidance loss {name!r}; choose one of {', '.join(GUIDANCE_NAMES)}")
