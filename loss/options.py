"""The guidance losses and penalty gradients by name: what a user chooses among.

Torch-free, so the command line and the settings form list the choices without loading torch;
`loss.factory` builds a loss from its name, `loss.finite_difference` takes the gradient named.
"""

from types import MappingProxyType

GUIDANCE_NAMES = ("punisher", "rrr", "gradcam")  # build_guidance(name, model)
# Default weight (lambda) per loss, from runs on the demo data; docs/losses.md has the
# measurements and the commands (punisher collapses at any larger weight: prefer rrr or gradcam).
DEFAULT_LAMBDAS = MappingProxyType({"punisher": 0.001, "rrr": 10.0, "gradcam": 0.1})
PENALTY_GRADIENTS = ("exact", "finite_difference")  # how the penalty's parameter gradient is taken
# Where the trainer, the fine-tune round and the command line take the default from.
DEFAULT_PENALTY_GRADIENT = "exact"
