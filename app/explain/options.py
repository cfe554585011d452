"""The choices `app.explain` offers by name, and the defaults the command line shows.

Torch-free, so the command line and the settings form list them without loading torch or captum;
the modules that act on a choice (`saliency`, `selection`, `propagation`, `discovery`) import
them from here.
"""

SALIENCY_METHODS = (
    "fine_gradcam",
    "occlusion",
    "gradcam",
    "gradcam_plus_plus",
    "saliency",
    "smoothgrad",
    "integrated_gradients",
    "deeplift",
    "gradient_shap",
)
# The heatmap shown when nobody chose one: on plain shortcut models over the shortcut zoo its map's
# maximum lands on the shortcut in 93 % of the images (occlusion 87 %, Grad-CAM 73 %), at one
# forward and backward per image (occlusion: ~225 forwards) (docs/saliency_methods.md).
DEFAULT_SALIENCY_METHOD = "fine_gradcam"
# Which images a feedback round shows first (selection.RANKERS has one ranker per name).
SELECTION_STRATEGIES = ("random", "entropy", "misclassified", "unreasonable")
SCOPES = ("content", "all", "class", "similar")  # where propagation copies painted masks to
DEFAULT_SIMILAR_SHARE = 0.3  # "similar": share of the image's saliency inside the source's red region
DEFAULT_SIMILAR_LIFT = 1.2  # ... or this many times that region's mean share over the candidates
DISCOVERY_METHOD = "gradcam"  # one backward per image: 10,000 images stay cheap (occlusion: ~225 forwards)
DISCOVERY_DISPLAY_METHOD = DEFAULT_SALIENCY_METHOD  # the groups' heatmaps: one more backward (docs/discovery.md)
DEFAULT_CLUSTERS = 3  # per class (2 missed the 30 %-share text and texture draws: docs/discovery.md)
