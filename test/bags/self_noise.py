"""Synthetic robot self-noise: a cooling fan, a motor's whine and mains hum (deterministic seeds).

Robots hear themselves at levels comparable to quiet events; this makes that noise reproducibly, from
physics-shaped parts rather than recordings (no licences, any length):

- fan: broadband noise, low-passed (a one-pole filter) plus the blade-pass tone and two harmonics,
  slowly amplitude-modulated (turbulence);
- motor whine: a harmonic tone whose pitch wanders a little (speed jitter under load);
- mains hum: 50 Hz and its odd and even harmonics, falling off.

The three are mixed at fixed ratios (fan 0 dB, whine -6 dB, hum -4 dB) and the sum set to `level_dbfs` RMS.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

SELF_NOISE_DBFS = -46.0
FAN_BLADE_HZ = 7 * 29.0  # 7 blades at 1740 rpm
WHINE_HZ = 1180.0
MAINS_HZ = 50.0


def _rms_to(x: np.ndarray, dbfs: float) -> np.ndarray:
    return x * (10 ** (dbfs / 20) / np.sqrt(np.mean(x ** 2)))


def fan(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    broad = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    wobble = 1.0 + 0.2 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 2 * np.pi))
    tones = sum(a * np.sin(2 * np.pi * k * FAN_BLADE_HZ * t + rng.uniform(0, 2 * np.pi))
                for k, a in ((1, 1.0), (2, 0.5), (3, 0.25)))
    return _rms_to(broad, 0.0) * wobble + 0.6 * _rms_to(tones, 0.0)


def motor_whine(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    drift = np.cumsum(rng.standard_normal(n)) / np.sqrt(rate)  # a random walk, ~1 unit per second
    freq = WHINE_HZ * (1.0 + 0.004 * np.tanh(drift))
    phase = 2 * np.pi * np.cumsum(freq) / rate
    return sum(a * np.sin(k * phase) for k, a in ((1, 1.0), (2, 0.4), (3, 0.2)))


def mains_hum(n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    return sum(np.sin(2 * np.pi * k * MAINS_HZ * t) / k for k in range(1, 7))


def self_noise(n: int, rate: int, seed: int, level_dbfs: float = SELF_NOISE_DBFS) -> np.ndarray:
    """`n` samples of fan + motor whine + mains hum at `level_dbfs` RMS (float32)."""
    rng = np.random.default_rng(seed)
    mix = (_rms_to(fan(n, rate, rng), 0.0) + _rms_to(motor_whine(n, rate, rng), -6.0)
           + _rms_to(mains_hum(n, rate), -4.0))
    return _rms_to(mix, level_dbfs).astype(np.float32)
