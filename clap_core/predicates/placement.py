"""Example recordings as the engine would hear them: placed in room audio, windowed like the node.

Why: a few isolated, normalised clips are not what a robot hears. A calibrator fitted on them
learns "loud clean sound vs. nothing" and its threshold means little in a room. So each example
is mixed into background audio (the user's recordings of the room, or a synthetic room tone) at
a few levels, with a window's length of room audio before and after it, and cut into windows by
the node's own `Windower` at the node's hop: the same windows, onset and offset included, that
the node would score. A window's truth follows the scorer's rule (`metrics.window_truth`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio_io import load_audio, resample
from ..clips import crop, scale_to_snr
from .engine import embed_windows
from .metrics import Event, window_truth
from .scoring import unit
from .windowing import HOP_S, recording_windows

ROOM_TONE_DBFS = -55.0  # a quiet room, as a robot's microphone hears it
ROOM_TONE_S = 30.0


@dataclass(frozen=True)
class Placement:
    """How examples are put in front of the model. `snrs_db`: the example's RMS level over the
    background's (near and loud to far and faint); `pad_s`: room audio before and after it
    (None: one window); `backgrounds`: mono recordings at the model's rate (None: room tone)."""

    snrs_db: tuple[float, ...] = (30.0, 20.0, 10.0)
    pad_s: float | None = None
    backgrounds: tuple[np.ndarray, ...] | None = None


@dataclass
class ExampleWindows:
    """One recording's windows over every mix, embedded as the engine embeds them.
    `holds`: 1 the window holds the recording's sound, 0 not at all, -1 only grazes it (don't care);
    `part_holds`: the same per part (True only for 1)."""

    starts: np.ndarray  # [n] window start in its mix, seconds
    whole: np.ndarray  # [n, d] unit
    parts: np.ndarray | None  # [n, K, d] unit, None for models without parts
    holds: np.ndarray  # [n] int8
    part_holds: np.ndarray  # [n, K] bool (K = 1: the whole window)
    mix: np.ndarray  # [n] which mix (placement level) each window comes from


def room_tone(rate: int, seconds: float = ROOM_TONE_S, seed: int = 0) -> np.ndarray:
    """Pink-ish (1/f power) noise at `ROOM_TONE_DBFS`: the default background when the user gives none.
    Deterministic, so a calibration is repeatable."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    spec /= np.sqrt(np.maximum(f, 20.0))
    wave = np.fft.irfft(spec, n)
    return (wave * (10 ** (ROOM_TONE_DBFS / 20) / np.sqrt(np.mean(wave ** 2)))).astype(np.float32)


def load_backgrounds(paths: list[Path], rate: int) -> tuple[np.ndarray, ...]:
    """User background recordings at the model's rate, at their own (recorded) level."""
    out = []
    for path in paths:
        wave, sr = load_audio(path)
        out.append(resample(wave, sr, rate))
    return tuple(out)


def mixes(wave: np.ndarray, rate: int, window_s: float, placement: Placement) -> list[tuple[np.ndarray, Event]]:
    """The recording (at `rate`) in background audio, once per level: (mix, where the sound lies)."""
    backgrounds = placement.backgrounds or (room_tone(rate),)
    pad = int(round((placement.pad_s if placement.pad_s is not None else window_s) * rate))
    length = pad + len(wave) + pad
    out = []
    for k, snr in enumerate(placement.snrs_db):
        bg = backgrounds[k % len(backgrounds)]
        room = crop(np.tile(bg, 2), length, np.random.default_rng(k)).astype(np.float32)
        mix = room.copy()
        mix[pad:pad + len(wave)] += scale_to_snr(room, wave, -snr)
        out.append((mix, Event(pad / rate, (pad + len(wave)) / rate, "")))
    return out


def example_windows(model: Any, path: Path, window_s: float, placement: Placement,
                    hop_s: float = HOP_S) -> ExampleWindows:
    """Every window the node would make of the recording in each of its mixes, embedded."""
    rate = int(model.sample_rate)
    wave, sr = load_audio(path)
    starts, whole, parts, holds, part_holds, which = [], [], [], [], [], []
    for k, (mix, event) in enumerate(mixes(resample(wave, sr, rate), rate, window_s, placement)):
        windows = recording_windows(mix, rate, rate, window_s, hop_s)
        for w_emb, p_emb, bounds in embed_windows(model, [w.samples for w in windows], parts=True):
            whole.append(unit(w_emb.astype(np.float64)))
            if p_emb is not None:
                parts.append(unit(p_emb.astype(np.float64)))
        for w in windows:
            truth = window_truth(w.t_start, w.t_end, [event])
            holds.append(-1 if truth is None else int(truth))
            part_holds.append([window_truth(w.t_start + a, w.t_start + b, [event]) is True for a, b in bounds])
            starts.append(w.t_start)
            which.append(k)
    return ExampleWindows(np.array(starts), np.concatenate(whole), np.concatenate(parts) if parts else None,
                          np.array(holds, np.int8), np.array(part_holds, bool), np.array(which))
