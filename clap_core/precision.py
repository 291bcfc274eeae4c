"""Reduced-precision inference (`precision: fp32 | bf16 | fp16`), opt-in, in one place.

Why these mechanisms: matrix products and convolutions are what bf16/fp16 make faster (AMX and
AVX-512-BF16 on the CPU, tensor cores on a GPU), so inference runs under `torch.autocast`, which
picks the low-precision kernel per operation and keeps reductions and norms in fp32. Two parts are
kept out of it: the log-Mel front ends (an 8-bit mantissa would put the spectrum's quantisation
noise ~50 dB below its peak, where quiet sounds live), and kernels autocast cannot see — CNN14's
pre-packed oneDNN convolutions, whose weights are converted once instead (`AudioTower.
set_inference_dtype`). Text stays fp32: prompts are embedded once, so fewer bits buy nothing
there, and MiniLM in bf16 flipped 1 of sounds45's 133 zero-shot decisions (two classes 0.0003
apart; measured 2026-12-03). Training paths (`encode_audio`/`encode_text`) stay fp32.

Paths and what they support (`unsupported_reason`):
- torch models (`ClapModel`, `LaionClapModel`): fp32, bf16, fp16 on the CPU (fp16 runs, but no
  faster than fp32 without AMX-FP16) and on CUDA (bf16 where the GPU has it).
- the default model's YAMNet tower is an ONNX Runtime graph: it stays fp32 whatever the setting;
  precision then covers its audio projection only (no speed to gain, accepted for uniformity).
- `clap_core.onnx_model` (the torch-free node runtime): fp32 only (`check_onnx_precision`).

The node offers only the precisions `bench/precision.py` measured to keep cosine ≥ 0.999 to fp32
and sounds45's zero-shot decisions unchanged (`NODE_REFUSED`; numbers in docs/core.md).
This module imports torch only inside the functions that need it (the node's checks are torch-free).
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, ContextManager, Protocol, TypeVar

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")

# The node's allow-list, measured by bench/precision.py (docs/core.md, "Reduced precision",
# 2026-12-03): a precision listed here is refused by the node, with this reason.
NODE_REFUSED: dict[str, str] = {}


class PrecisionModel(Protocol):
    """What `apply_precision` needs of a model: where it runs and the dtype its inference uses."""

    inference_dtype: "torch.dtype"

    @property
    def device(self) -> "torch.device": ...


def check_precision(name: str, what: str = "precision") -> str:
    """The name, if it is one of PRECISIONS; else one line naming `what` was set and the choices."""
    if name not in PRECISIONS:
        raise ConfigError(f"{what}: {name!r} is not one of {' | '.join(PRECISIONS)}")
    return name


def torch_dtype(name: str) -> "torch.dtype":
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[check_precision(name)]


def unsupported_reason(name: str, device: "str | torch.device") -> str | None:
    """Why torch inference in `name` cannot run on `device` here, or None when it can."""
    import torch

    check_precision(name)
    device = torch.device(device)
    if name == "fp32":
        return None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "torch sees no CUDA device here"
        if name == "bf16" and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name(device)} has no bf16 support; use fp16 or fp32"
        return None
    if device.type != "cpu":
        return f"reduced precision is implemented for cpu and cuda, not {device.type}"
    if not torch.amp.is_autocast_available("cpu"):
        return "this torch build has no CPU autocast"
    return None


def check_onnx_precision(name: str) -> None:
    """The ONNX Runtime path runs the float32 graph it exported; anything else is refused."""
    if check_precision(name) != "fp32":
        raise ConfigError(f"precision: {name!r}: the ONNX Runtime audio path runs fp32 only (its graph is "
                          "exported in float32); use the torch runtime for bf16/fp16")


def check_node_precision(name: str) -> None:
    """Refuse, with the measured reason, what the node does not offer."""
    check_precision(name, "parameter 'precision'")
    if name in NODE_REFUSED:
        raise ConfigError(f"parameter 'precision': {name} is not offered for the node: {NODE_REFUSED[name]} "
                          "(measured by bench/precision.py, docs/core.md)")


M = TypeVar("M", bound=PrecisionModel)


def apply_precision(model: M, name: str, device: "str | torch.device | None" = None) -> M:
    """Make `model`'s audio inference (`embed_audio`, `embed_audio_parts`) run in `name`. `device`:
    where it will run (default: where it is; the model is not moved). Fails with one line when
    that cannot run there. Calling it again with another precision switches back and forth."""
    from .model import ClapModel

    dtype = torch_dtype(name)
    reason = unsupported_reason(name, model.device if device is None else device)
    if reason is not None:
        raise ConfigError(f"precision: {name!r}: {reason}")
    model.inference_dtype = dtype
    if isinstance(model, ClapModel):
        model.audio_tower.set_inference_dtype(dtype)
    return model


def autocast(device: "torch.device", dtype: "torch.dtype") -> ContextManager:
    """The context inference runs in: autocast to `dtype`, or nothing at fp32."""
    import torch

    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def full_precision(device: "torch.device") -> ContextManager:
    """Autocast off, for the front ends (see the module docstring)."""
    import torch

    return torch.autocast(device.type, enabled=False)


def cpu_description() -> str:
    """The CPU model and the ISA flags that decide which low-precision kernels run (benchmarks print it)."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")
    model, flags = "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    have = [f for f in wanted if f in flags]
    return f"{model}; ISA: {' '.join(have) or 'none of ' + ' '.join(wanted)}"
