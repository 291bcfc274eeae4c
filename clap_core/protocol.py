"""The one inference contract every runtime implements: NumPy in, NumPy out.

The node, replay, calibration and the CLIs only see this; `clap_core.factory.load_model` returns
it for any weights, whether ONNX Runtime (`onnx_model.OnnxAudioModel`) or torch
(`torch_runtime.TorchInferenceModel`) runs them. Torch-free, so a torch-free process can type
against it. Code that needs tensors (training, parity tests) uses `factory.load_torch_model`.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

Spans = list[tuple[float, float]]


@runtime_checkable
class InferenceModel(Protocol):
    """Audio and text into one joint space. Embeddings are float32 `[n, d]`, not normalised."""

    @property
    def name(self) -> str:
        """The weights' model name (config `name`): calibrated prototypes are tied to it."""

    @property
    def sample_rate(self) -> int:
        """Rate the audio tower runs at; other rates are resampled first."""

    @property
    def clip_seconds(self) -> float:
        """Clip length the model was trained on: the default window."""

    @property
    def embed_dim(self) -> int: ...

    @property
    def logit_scale(self) -> float:
        """exp(learned log-scale), capped at the config's `logit_scale_max` (100 by default), as
        CLAP training caps it: the factor `similarity` multiplies cosines by."""

    @property
    def template(self) -> str:
        """The prompt template the model was trained with (one `{}`)."""

    @property
    def runtime(self) -> str:
        """'torch' or 'onnx'."""

    @property
    def device(self) -> str:
        """Where the audio path runs: 'cpu', 'cuda:N'."""

    @property
    def prefers_one_torch_thread(self) -> bool:
        """True when the audio tower is ONNX Runtime inside torch (YAMNet): torch's own pool then
        only spin-waits against ONNX Runtime's, so batch work runs best with one torch thread."""

    def embed_audio(self, waveform: Any, sample_rate: int) -> np.ndarray:
        """`[batch, samples]` (or `[samples]`) mono → `[batch, d]`."""

    def embed_audio_parts(self, waveform: Any, sample_rate: int, part_s: float,
                          part_hop_s: float) -> tuple[np.ndarray, np.ndarray, Spans]:
        """`embed_audio` plus `[batch, parts, d]` embeddings of ~`part_s` stretches and their
        (start, end) seconds from the window start. A model without parts gives the whole
        window as its one part."""

    def embed_text(self, texts: Sequence[str], mixes: Sequence[str] | None = None) -> np.ndarray:
        """`[n, d]` embeddings of the strings as given (no template added). `mixes[i]`: the text
        whose head mix `texts[i]` is embedded in, for models whose text heads are gated
        (`projection.TextGate`; others ignore it): texts scored against each other share one."""

    def similarity(self, audio_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
        """`[n_audio, n_text]`: `logit_scale` × cosine similarity."""

    def release_text_tower(self) -> bool:
        """Free the text encoder once prompts are embedded; `embed_text` reloads it. Returns
        whether anything was released."""

    def compact_for_inference(self) -> None:
        """Free what inference does not need (the text tower, training copies of weights); the
        model cannot be trained or saved afterwards. The node calls it once."""

    def cache_patches(self, entries: int) -> bool:
        """Let the audio tower reuse up to `entries` patch results across overlapping windows
        (exactly: same outputs as recomputing; 0 turns it off). Returns whether the tower can."""


def distinct(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """The distinct strings in first-seen order, and each input's row among them: a text encoder
    runs each string once (a predicate set repeats its background prompts per predicate)."""
    unique = list(dict.fromkeys(texts))
    row = {t: i for i, t in enumerate(unique)}
    return unique, [row[t] for t in texts]


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def scaled_cosine(audio_emb: np.ndarray, text_emb: np.ndarray, scale: float) -> np.ndarray:
    """`scale` × cosine similarity, `[n_audio, n_text]`, in float32: `similarity` of every runtime."""
    a = unit(np.asarray(audio_emb, dtype=np.float32))
    t = unit(np.asarray(text_emb, dtype=np.float32))
    return (np.float32(scale) * (a @ t.T)).astype(np.float32)


def capped_scale(log_scale: float, cap: float) -> float:
    """exp(log_scale), capped: the one place `logit_scale` is turned into the factor."""
    return float(min(np.exp(float(log_scale)), float(cap)))
