"""clap_core: CLAP (contrastive language-audio pretraining) models, zero-shot scoring and audio I/O.

Entry points (`factory.py`): `load_model` → an `InferenceModel` (`protocol.py`, NumPy in and out,
ONNX Runtime or torch); `load_torch_model` → the torch module, for training and tensor work
(`clap_core.model` holds `ClapModel` and `create_model`). This module only re-exports, and nothing
it imports imports torch, so that torch-free parts (`clap_core.predicates`, the ONNX runtime) stay so.
"""
from .config import ModelConfig
from .errors import AudioFileError, CheckpointError, ClapError, ConfigError, UnknownWeightsError
from .factory import load_model, load_torch_model
from .protocol import InferenceModel

__all__ = ["load_model", "load_torch_model", "InferenceModel", "ModelConfig", "ClapError", "ConfigError",
           "CheckpointError", "UnknownWeightsError", "AudioFileError"]
