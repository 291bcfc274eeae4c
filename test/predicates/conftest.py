"""Shared fixtures: a tiny stand-in model for the engine's *logic* tests, and the real default model.

The stand-in is a test double, used only where semantics do not matter (windowing, tracking, hot
reload, NaN handling): its audio embedding is the energy in three frequency bands, and a text's
embedding is the band its words name ("low tone", "mid tone", "high tone"; anything else is the
flat "background" direction). End-to-end quality is tested with the real default model
(test_engine_real.py), which skips with a reason while its weights are not in the repo.
"""
from __future__ import annotations

import numpy as np
import pytest

from clap_core.config import DEFAULT_TEMPLATE

BANDS = {"low": (100, 400), "mid": (900, 1400), "high": (2500, 3500)}


class BandModel:
    """Deterministic stand-in implementing `clap_core.protocol.InferenceModel` (NumPy in and out)."""

    name = "band-model"
    sample_rate = 8000
    clip_seconds = 5.0
    embed_dim = 4
    logit_scale = 30.0
    template = DEFAULT_TEMPLATE
    runtime = "numpy"
    device = "cpu"
    prefers_one_torch_thread = False

    def __init__(self) -> None:
        self.text_calls = 0
        self.released = 0

    def embed_audio(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        assert sample_rate == self.sample_rate
        x = np.asarray(waveform)
        spec = np.abs(np.fft.rfft(x, axis=1)) ** 2
        freqs = np.fft.rfftfreq(x.shape[1], 1 / sample_rate)
        e = [spec[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in BANDS.values()]
        e = np.stack(e, 1)
        e = e / np.maximum(spec.sum(1, keepdims=True), 1e-12)  # share of all energy
        bg = np.full((len(x), 1), 0.35)  # a constant "anything" component
        return np.concatenate([e, bg], 1).astype(np.float32)

    def embed_audio_parts(self, waveform: np.ndarray, sample_rate: int, part_s: float, part_hop_s: float):
        """No parts: the whole window is its one part."""
        whole = self.embed_audio(waveform, sample_rate)
        return whole, whole[:, None], [(0.0, np.shape(waveform)[-1] / sample_rate)]

    def embed_text(self, texts: list[str], mixes: list[str] | None = None) -> np.ndarray:
        """Band words → axes; `mixes` ignored (no gated heads)."""
        self.text_calls += 1
        rows = []
        for t in texts:
            v = np.zeros(4)
            for i, band in enumerate(BANDS):
                if f"{band} tone" in t:
                    v[i] = 1.0
            if not v.any():
                v[3] = 1.0
            rows.append(v)
        return np.array(rows, dtype=np.float32)

    def similarity(self, audio_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
        from clap_core.protocol import scaled_cosine

        return scaled_cosine(audio_emb, text_emb, self.logit_scale)

    def release_text_tower(self) -> bool:
        self.released += 1
        return True

    def compact_for_inference(self) -> None:
        self.release_text_tower()

    def cache_patches(self, entries: int) -> bool:
        return False


def tone(freq: float, seconds: float, sr: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(name="tone")
def tone_fixture():
    return tone


@pytest.fixture
def band_model() -> BandModel:
    return BandModel()
