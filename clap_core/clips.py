"""Clip-level helpers: one fixed-length piece (tile, crop) or a fixed set of windows of a clip, and
mixing at an SNR. The one home of these, for files (`inference.embed_file`), training crops and
calibration mixes alike; streaming audio is windowed by `predicates.windowing.Windower` instead.

Deterministic unless a generator is passed: the same file always yields the same windows, so the
same file always gets the same embedding.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import AudioFileError


def tile_to_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Repeat a short clip until it fills `length` samples (the paper's padding for short clips)."""
    if wave.size == 0:
        raise AudioFileError("cannot tile an empty clip")
    repeats = -(-length // wave.size)
    return np.tile(wave, repeats)[:length]


def crop(wave: np.ndarray, length: int, rng: Optional[np.random.Generator]) -> np.ndarray:
    """A `length`-sample window: random start (rng) or the start (None); short clips are tiled."""
    if wave.size < length:
        reps = -(-length // wave.size) + 1
        tiled = np.tile(wave, reps)
        start = int(rng.integers(wave.size)) if rng is not None else 0
        return tiled[start:start + length]
    start = int(rng.integers(wave.size - length + 1)) if rng is not None else 0
    return wave[start:start + length]


def clip_windows(wave: np.ndarray, sample_rate: int, clip_seconds: float,
                 hop_seconds: float | None = None) -> np.ndarray:
    """Fixed-length windows `[n, clip_samples]` covering the whole clip (`clip_seconds`: the
    model's `clip_seconds`).

    Short clips are tiled to one window; long clips get windows every `hop_seconds` (default:
    half a clip) plus one aligned to the end, so no part of the recording is left out.
    """
    length = int(round(clip_seconds * sample_rate))
    wave = np.asarray(wave, dtype=np.float32)
    if wave.size <= length:
        return tile_to_length(wave, length)[None]
    hop = int(round((hop_seconds if hop_seconds else clip_seconds / 2) * sample_rate))
    starts = list(range(0, wave.size - length + 1, max(hop, 1)))
    if starts[-1] != wave.size - length:
        starts.append(wave.size - length)
    return np.stack([wave[s : s + length] for s in starts])


def scale_to_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Noise scaled so that power(signal)/power(noise) = snr_db; silent inputs leave it as is."""
    p_sig = float(np.mean(signal.astype(np.float64) ** 2))
    p_noise = float(np.mean(noise.astype(np.float64) ** 2))
    if p_sig <= 0.0 or p_noise <= 0.0:
        return np.zeros_like(noise)
    return noise * np.float32(np.sqrt(p_sig / (p_noise * 10.0 ** (snr_db / 10.0))))
