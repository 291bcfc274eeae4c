"""The torch runtime behind the inference contract: a `ClapModel` or `LaionClapModel` with NumPy at its edges.

Tensors stay on the model's device from the front end to the projections; only the embeddings
cross back to the host, as float32 arrays, because the scorer works in NumPy.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np
import torch

from .config import ModelConfig
from .protocol import Spans, capped_scale, scaled_cosine

# Audio towers that are an ONNX Runtime graph inside torch: torch's thread pool only spin-waits then.
ONNX_RUNTIME_TOWERS = ("yamnet",)


class TorchClapModule(Protocol):
    """What `ClapModel` and `LaionClapModel` both provide (tensors in and out)."""

    config: ModelConfig
    sample_rate: int
    clip_seconds: float
    embed_dim: int
    device: torch.device
    logit_scale: torch.Tensor

    def embed_audio(self, waveform: Any, sample_rate: int) -> torch.Tensor: ...

    def embed_audio_parts(self, waveform: Any, sample_rate: int, part_s: float,
                          part_hop_s: float) -> tuple[torch.Tensor, torch.Tensor, Spans]: ...

    def embed_text(self, texts: Sequence[str], mixes: Sequence[str] | None = None) -> torch.Tensor: ...

    def release_text_tower(self) -> bool: ...

    def compact_for_inference(self) -> None: ...

    def cache_patches(self, entries: int) -> bool: ...


def host(x: torch.Tensor) -> np.ndarray:
    """A result tensor (any device) as a float32 host array: the protocol's boundary."""
    return x.detach().float().cpu().numpy()


class TorchInferenceModel:
    """`protocol.InferenceModel` over a torch module (see `factory.load_model`)."""

    runtime = "torch"

    def __init__(self, module: TorchClapModule) -> None:
        self._module = module

    @property
    def name(self) -> str:
        return str(self._module.config.name)

    @property
    def sample_rate(self) -> int:
        return int(self._module.sample_rate)

    @property
    def clip_seconds(self) -> float:
        return float(self._module.clip_seconds)

    @property
    def embed_dim(self) -> int:
        return int(self._module.embed_dim)

    @property
    def logit_scale(self) -> float:
        return capped_scale(float(self._module.logit_scale.detach()), self._module.config.logit_scale_max)

    @property
    def template(self) -> str:
        return str(self._module.config.template)

    @property
    def device(self) -> str:
        return str(self._module.device)

    @property
    def prefers_one_torch_thread(self) -> bool:
        return self._module.config.audio.kind in ONNX_RUNTIME_TOWERS

    def embed_audio(self, waveform: Any, sample_rate: int) -> np.ndarray:
        return host(self._module.embed_audio(waveform, sample_rate))

    def embed_audio_parts(self, waveform: Any, sample_rate: int, part_s: float,
                          part_hop_s: float) -> tuple[np.ndarray, np.ndarray, Spans]:
        whole, parts, spans = self._module.embed_audio_parts(waveform, sample_rate, part_s, part_hop_s)
        return host(whole), host(parts), spans

    def embed_text(self, texts: Sequence[str], mixes: Sequence[str] | None = None) -> np.ndarray:
        return host(self._module.embed_text(texts, mixes))

    def similarity(self, audio_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
        return scaled_cosine(audio_emb, text_emb, self.logit_scale)

    def release_text_tower(self) -> bool:
        return self._module.release_text_tower()

    def compact_for_inference(self) -> None:
        self._module.compact_for_inference()

    def cache_patches(self, entries: int) -> bool:
        return self._module.cache_patches(entries)
