"""clap_core: CLAP (contrastive language-audio pretraining) models, zero-shot scoring and audio I/O.

The one entry point is `load_model`; see `clap_core.model.ClapModel` for what a model can do.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .config import ModelConfig
from .errors import AudioFileError, CheckpointError, ClapError, ConfigError, UnknownWeightsError

if TYPE_CHECKING:
    import torch

    from .model import ClapModel

__all__ = ["load_model", "create_model", "ClapModel", "ModelConfig", "ClapError", "ConfigError",
           "CheckpointError", "UnknownWeightsError", "AudioFileError"]


def load_model(weights: str | os.PathLike = "default", device: str | torch.device = "cpu",
               isolate_text: bool = False, precision: str = "fp32") -> ClapModel:
    """A ready model in eval mode: `weights` is "default", a registered name, or a checkpoint path
    (an MS-CLAP 2022 `.pth`, detected by its keys, or a folder written by `save_checkpoint`).

    `isolate_text=True` keeps the text encoder out of this process: `embed_text` runs it in a
    short-lived child process (seconds per call). For long-running inference processes that embed
    a few prompts once — a robot's node then never holds BERT's code or weights in memory.

    `precision` ("fp32", "bf16", "fp16"): what audio inference computes in (text stays fp32;
    `clap_core.precision`; the cosine each keeps to fp32, per model family: docs/core.md)."""
    from .checkpoints import load_checkpoint
    from .precision import apply_precision, check_precision
    from .weights_registry import resolve_weights

    check_precision(precision)  # a bad name fails before the weights load
    model = load_checkpoint(resolve_weights(weights), isolate_text=isolate_text)
    return apply_precision(model.to(device).eval(), precision)


def __getattr__(name: str) -> Any:
    """`ClapModel` and `create_model` import torch: loaded on first use, so that torch-free parts
    (`clap_core.onnx_model`, `clap_core.predicates`) stay torch-free."""
    if name in ("ClapModel", "create_model"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module 'clap_core' has no attribute {name!r}")
