"""Loading a model: the one place that picks the runtime and the device for a set of weights.

`load_model` returns an `InferenceModel` (`protocol.py`: NumPy in and out) whichever runtime runs
it, so the node, replay, calibration, the CLIs and the benches run the same runtime for the same
weights. Runtimes:

- "onnx": the audio path exported to ONNX and run by ONNX Runtime, torch never imported in this
  process (`onnx_model.py`); CNN14 and the default model's YAMNet export, HTS-AT and LAION not yet;
- "torch": the torch module in this process (`torch_runtime.py`);
- "auto": onnx where the weights' audio tower exports, torch otherwise.

`load_torch_model` is the one way to the torch module itself (`ClapModel`, or `LaionClapModel`
for LAION-CLAP folders), for code that needs tensors: training, export, parity tests.

Torch-free at import: the ONNX path must stay so.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .protocol import InferenceModel

if TYPE_CHECKING:
    from .laion import LaionClapModel
    from .model import ClapModel

RUNTIMES = ("auto", "torch", "onnx")


def choose_runtime(weights: str | os.PathLike, runtime: str = "auto", parameter: str = "runtime",
                   precision: str = "fp32") -> str:
    """'onnx' or 'torch' for `weights` (read from its config, nothing loaded); a runtime the weights
    cannot run on is a ConfigError naming `parameter`. `auto` with a reduced precision is torch
    (the ONNX path is fp32 only)."""
    from .onnx_model import EXPORTABLE_AUDIO_TOWERS, exportable

    if runtime not in RUNTIMES:
        raise ConfigError(f"{parameter}={runtime!r} is not one of {' | '.join(RUNTIMES)}")
    if runtime == "torch" or (runtime == "auto" and precision != "fp32"):
        return "torch"
    if exportable(weights):
        return "onnx"
    if runtime == "onnx":
        raise ConfigError(f"{parameter}='onnx': weights '{weights}': its audio tower is not one that exports to "
                          f"ONNX ({', '.join(EXPORTABLE_AUDIO_TOWERS)}); use {parameter}=torch or auto")
    return "torch"


def load_model(weights: str | os.PathLike = "default", runtime: str = "auto", device: Any = "cpu",
               isolate_text: bool = False, *, precision: str = "fp32", threads: int | None = None,
               onnx_cache_dir: str | None = None, device_parameter: str = "device",
               runtime_parameter: str = "runtime", precision_parameter: str = "precision") -> InferenceModel:
    """A ready model for inference. `weights`: "default", a registered name, or a checkpoint path
    (project folder, MS-CLAP 2022/2023 `.pth`, LAION-CLAP folder). `device`: cpu | cuda | cuda:N |
    auto (CUDA when torch sees one); a device that is not there is one ConfigError line naming
    `device_parameter`. The ONNX runtime uses CUDA when its onnxruntime has the CUDA provider and
    says so on stderr when it falls back to the CPU.

    `isolate_text=True` (torch runtime; the ONNX runtime always does it) keeps the text encoder out
    of this process: `embed_text` runs it in a short-lived child process (seconds per call), for
    long-running processes that embed a few prompts once. `threads`: ONNX Runtime's intra-op threads;
    `onnx_cache_dir`: keep the ONNX export there for later loads (`onnx_model.load_onnx_model`).
    `precision` (fp32 | bf16 | fp16): what audio inference computes in (`clap_core.precision`;
    text stays fp32; the cosine each keeps to fp32, per model family: docs/core.md)."""
    from .precision import apply_precision, check_precision

    check_precision(precision, precision_parameter)  # a bad name fails before the weights load
    if choose_runtime(weights, runtime, runtime_parameter, precision) == "onnx":
        from .onnx_model import load_onnx_model

        return load_onnx_model(weights, threads, str(device), device_parameter, onnx_cache_dir, precision)
    from .torch_runtime import TorchInferenceModel

    module = load_torch_model(weights, device, isolate_text, device_parameter=device_parameter)
    return TorchInferenceModel(apply_precision(module, precision))


def load_torch_model(weights: str | os.PathLike = "default", device: Any = "cpu", isolate_text: bool = False,
                     *, device_parameter: str = "device") -> ClapModel | LaionClapModel:
    """The torch module of `weights` in eval mode on `device` (see `load_model` for both)."""
    from .checkpoints import load_checkpoint
    from .devices import resolve_device
    from .weights_registry import resolve_weights

    target = resolve_device(str(device), device_parameter)  # before loading: a bad device fails at once
    model = load_checkpoint(resolve_weights(weights), isolate_text=isolate_text)
    return model.to(target).eval()
