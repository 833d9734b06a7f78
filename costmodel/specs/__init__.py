"""Data specs: models, chips and numeric formats, each number with its source."""

from .catalog import list_hardware, list_models, load_hardware, load_model
from .hardware import HardwareSpec
from .hf_config import model_from_hf_config
from .model import ModelSpec, ModelStructure
from .precision import BYTES_PER_ELEMENT, bytes_per_element, default_math_precision

__all__ = [
    "BYTES_PER_ELEMENT",
    "HardwareSpec",
    "ModelSpec",
    "ModelStructure",
    "bytes_per_element",
    "default_math_precision",
    "list_hardware",
    "list_models",
    "load_hardware",
    "load_model",
    "model_from_hf_config",
]
