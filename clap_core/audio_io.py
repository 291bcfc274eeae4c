"""Reading audio files of any shape into what the model wants: mono float32 and fixed-length clips.

Deterministic by design: the same file always yields the same windows (no random crops), so the
same file always gets the same embedding.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .errors import AudioFileError, ClapError
from .resample import resample  # noqa: F401  (audio I/O's one resampler, re-exported)


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read wav/flac/ogg (anything libsndfile reads) as mono float32 in [-1, 1] at its own rate.

    Channels are averaged: concatenating them (as some reference code does) would double the
    clip's length and mix left/right into time.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such audio file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
        raise AudioFileError(f"{path}: cannot decode audio ({exc}); convert it to wav/flac/ogg") from None
    if data.size == 0:
        raise AudioFileError(f"{path}: the file holds no samples")
    mono = data.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioFileError(f"{path}: holds NaN or infinite samples")
    return np.ascontiguousarray(mono), int(rate)


def waveform_batch(waveform: Any) -> Any:
    """`[samples]` or `[batch, samples]` float audio (a NumPy array or a torch tensor, returned as
    the same kind) as `[batch, samples]`, checked: one NaN or inf sample would make every score of
    the window NaN, so it is an error that says what to do."""
    if waveform.ndim == 1:
        waveform = waveform[None]
    if waveform.ndim != 2:
        raise ValueError(f"waveform must be [batch, samples] mono, got shape {tuple(waveform.shape)}")
    if not math.isfinite(float(waveform.sum())):  # one reduction: any NaN/inf poisons the sum
        raise ClapError("waveform holds NaN or infinite samples; drop or repair that audio first")
    return waveform


def tile_to_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Repeat a short clip until it fills `length` samples (the paper's padding for short clips)."""
    if wave.size == 0:
        raise AudioFileError("cannot tile an empty clip")
    repeats = -(-length // wave.size)
    return np.tile(wave, repeats)[:length]


def clip_windows(wave: np.ndarray, sample_rate: int, clip_seconds: float = 5.0,
                 hop_seconds: float | None = None) -> np.ndarray:
    """Fixed-length windows `[n, clip_samples]` covering the whole clip.

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
