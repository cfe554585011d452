"""Build a guidance loss by name, and a default weight (lambda) for each."""

from __future__ import annotations

import logging

from torch import nn

from loss.gradcam import GradCAMLoss
from loss.options import GUIDANCE_NAMES
from loss.punisher import PunisherLoss
from loss.rrr import RRRLoss

logger = logging.getLogger(__name__)


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
