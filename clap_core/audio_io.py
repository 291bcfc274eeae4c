"""Reading audio files of any shape into what the model wants: mono float32 at its own rate.

Fixed-length clips and windows of a clip are `clap_core.clips`; streaming windows are
`clap_core.predicates.windowing`.
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
