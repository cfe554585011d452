"""Build a guidance loss by name, and a default weight (lambda) for each."""

from __future__ import annotations

import logging
from types import MappingProxyType

from torch import nn

from loss.gradcam import GradCAMLoss
from loss.punisher import PunisherLoss
from loss.rrr import RRRLoss

logger = logging.getLogger(__name__)

GUIDANCE_NAMES = ("punisher", "rrr", "gradcam")

# Default lambda per loss (provisional, to be calibrated on real data). Rule of thumb (RRR paper):
# lambda * penalty about the size of the cross-entropy at the start of training.
# Measured on small_cnn (10 classes), 64 random 32 x 32 images uniform in [-1, 1] (mean/std 0.5),
# masks: red 8 x 8 corner / red 16 x 16 corner / red 8 x 8 + green 16 x 16; medians of 3-5 seeds,
# guidance in eval mode. "trained": after 20 Adam steps (lr 1e-3) on that batch, CE 1.65.
#                 fresh (CE 2.30)               trained (CE 1.65)
#   punisher   0.021 / 0.098 / -0.090        0.73 / 4.0 / -4.2
#   rrr        3e-7  / 1.6e-6 / 3e-7          0.027 / 0.19 / 0.027
#   gradcam    0.22  / 0.26  / 0.90          0.27 / 0.43 / 0.74
# A fresh model's RRR penalty is ~0 because its softmax is nearly uniform and
# d/dx sum_k log p_k = sum_k (1 - K p_k) d z_k / dx vanishes; the rule taken literally there
# (lambda ~ 1e7) would explode as soon as the model learns, so RRR's lambda is taken from the
# trained column (and lies inside the paper's working range 10..1e4). Guidance is applied to
# models that already train (the user paints what a trained model looks at), so the other two
# sit between the fresh and the trained columns.
DEFAULT_LAMBDAS = MappingProxyType({"punisher": 10.0, "rrr": 100.0, "gradcam": 5.0})


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
