"""Explanations and the choices built on them: saliency maps, how reasonable an explanation is
against painted masks, which images a feedback round shows, and where painted content sits in
the other images (propagation). Imports datasets, models, loss and `app.errors` only."""

from app.explain.explanation_metrics import gradient_saliency, mass_share
from app.explain.propagation import SCOPES, PropagationPlan, apply_propagation, plan_propagation, propagate
from app.explain.reasonability import ReasonabilityMatrix, reasonability_matrix
from app.explain.saliency import SALIENCY_METHODS
from app.explain.selection import SELECTION_STRATEGIES, Choice, select_images

__all__ = [
    "SALIENCY_METHODS",
    "SCOPES",
    "SELECTION_STRATEGIES",
    "Choice",
    "PropagationPlan",
    "ReasonabilityMatrix",
    "apply_propagation",
    "gradient_saliency",
    "mass_share",
    "plan_propagation",
    "propagate",
    "reasonability_matrix",
    "select_images",
]
