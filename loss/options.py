"""The guidance losses and penalty gradients by name: what a user chooses among.

Torch-free, so the command line and the settings form list the choices without loading torch;
`loss.factory` builds a loss from its name, `loss.finite_difference` takes the gradient named.
"""

GUIDANCE_NAMES = ("punisher", "rrr", "gradcam")  # build_guidance(name, model)
PENALTY_GRADIENTS = ("exact", "finite_difference")  # how the penalty's parameter gradient is taken
# Where the trainer, the fine-tune round and the command line take the default from.
DEFAULT_PENALTY_GRADIENT = "exact"
