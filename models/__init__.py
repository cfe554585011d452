"""Models: the factory, the small CNN, the Grad-CAM target layer, the classifier head, and the device choice."""

from models.classifier_head import classifier_head, scale_head
from models.device import DeviceError, device_label, pick_device
from models.factory import build_model
from models.gradcam_layer import gradcam_layer
from models.small_cnn import SmallCNN
from models.specs import MODEL_NAMES, ModelSpec, UnknownModelError, model_spec
from models.weights import WeightsError, load_matching_weights

__all__ = [
    "MODEL_NAMES",
    "DeviceError",
    "ModelSpec",
    "SmallCNN",
    "UnknownModelError",
    "WeightsError",
    "build_model",
    "classifier_head",
    "device_label",
    "gradcam_layer",
    "load_matching_weights",
    "model_spec",
    "pick_device",
    "scale_head",
]
