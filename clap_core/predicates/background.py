"""The adaptive background: the room's (and the robot's own) sound, learned online, as a contrast.

Why: the shared background prompts ("silence", "a motor whirring", ...) describe rooms in general.
A robot hears *its* room and *itself* — a fan, a motor's whine, mains hum — in every window, so a
prompt that fits its self-noise fires all the time, and a background prompt that fits it can beat
a quiet event on top of it. The room's own sound is the better contrast: each embedding is scored
relative to it,

    a' = unit(a) - strength * room,     room = running mean of unit "quiet" part embeddings

so every cosine becomes cos(a, t) - strength * cos(room, t) (up to the norm, which scoring divides
out): what the room already says about a prompt or a contrast no longer counts for it.

What is learned, and when (the state machine):
- *quiet* windows only: no predicate true and every score below its threshold, no gap or
  clipping. A window where anything fires is never learned, so a long-lasting state predicate is
  not learned away while it is heard;
- from each quiet window, its quietest part (lowest level: most likely room alone; the whole window
  for models without parts), into an exponential running mean with weight `rate` (the plain mean
  while fewer than 1/rate windows were seen): bounded memory, one vector;
- used only after `warmup_windows` quiet windows (until then scores are the prompts' alone);
- forgotten on a new source: `PredicateEngine.reset()` and a new audio segment (another sample
  rate, a long gap, time running back).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError

FIELDS = ("enabled", "rate", "warmup_windows", "strength")


@dataclass(frozen=True)
class AdaptiveBackgroundConfig:
    """`adaptive_background:` in the predicates YAML."""

    enabled: bool = False
    rate: float = 0.02  # weight of each new quiet window (time constant 1/rate windows)
    warmup_windows: int = 10  # quiet windows before the learned room is used
    strength: float = 0.5  # how much of the room's own similarity is taken off each cosine


@dataclass(frozen=True)
class BackgroundState:
    """What diagnostics show: is the room learned, from how much audio, and when last."""

    enabled: bool
    learned: bool
    windows_seen: int
    warmup_windows: int
    last_update_t: float | None  # audio time of the last learned window's end
    resets: int


def parse_adaptive_background(spec: Any, where: str = "adaptive_background") -> AdaptiveBackgroundConfig:
    """Validate the YAML mapping; `true`/`false` alone switch it with the default settings."""
    if isinstance(spec, bool):
        return AdaptiveBackgroundConfig(enabled=spec)
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be true, false or a mapping with {', '.join(FIELDS)}")
    for key in spec:
        if key not in FIELDS:
            raise ConfigError(f"{where}.{key}: unknown field (known: {', '.join(FIELDS)})")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled: must be true or false, got {enabled!r}")
    warmup = spec.get("warmup_windows", AdaptiveBackgroundConfig.warmup_windows)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 1 <= warmup <= 100000:
        raise ConfigError(f"{where}.warmup_windows: must be a whole number in [1, 100000], got {warmup!r}")
    return AdaptiveBackgroundConfig(enabled=enabled, warmup_windows=warmup,
                                    rate=_fraction(spec, "rate", AdaptiveBackgroundConfig.rate, where),
                                    strength=_fraction(spec, "strength", AdaptiveBackgroundConfig.strength, where))


def dump_adaptive_background(cfg: AdaptiveBackgroundConfig) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in FIELDS}


def _fraction(spec: dict[str, Any], key: str, default: float, where: str) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 < value <= 1.0:
        raise ConfigError(f"{where}.{key}: must be a number in (0, 1], got {value!r}")
    return float(value)


class AdaptiveBackground:
    """The learned room vector and its state machine; see the module docstring."""

    def __init__(self, cfg: AdaptiveBackgroundConfig) -> None:
        self.cfg = cfg
        self._resets = -1
        self.reset()

    def reset(self) -> None:
        """Forget the room (a new source)."""
        self._room: np.ndarray | None = None
        self._seen = 0
        self._last_t: float | None = None
        self._segment: int | None = None
        self._resets += 1

    @property
    def learned(self) -> bool:
        return self.cfg.enabled and self._seen >= self.cfg.warmup_windows

    def state(self) -> BackgroundState:
        return BackgroundState(self.cfg.enabled, self.learned, self._seen, self.cfg.warmup_windows, self._last_t,
                               self._resets)

    def new_segment(self, segment: int) -> None:
        """Called with each window's segment number: a new segment is a new source."""
        if self._segment is not None and segment != self._segment:
            self.reset()
        self._segment = segment

    def adjust(self, emb: np.ndarray) -> np.ndarray:
        """Unit embeddings `[..., d]` made relative to the room (unchanged until it is learned)."""
        a = np.asarray(emb, dtype=np.float64)
        a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
        if not self.learned or self._room is None:
            return a
        return a - self.cfg.strength * self._room

    def observe(self, quietest: np.ndarray, quiet: bool, t_end: float) -> bool:
        """Learn from one window (its quietest part's raw embedding `[d]`) if it was quiet."""
        if not self.cfg.enabled or not quiet:
            return False
        a = np.asarray(quietest, dtype=np.float64)
        a = a / max(float(np.linalg.norm(a)), 1e-12)
        if self._room is None or self._room.shape != a.shape:
            self._room, self._seen = np.zeros_like(a), 0
        self._seen += 1
        weight = max(self.cfg.rate, 1.0 / self._seen)
        self._room += weight * (a - self._room)
        self._last_t = float(t_end)
        return True


def is_quiet(values: list[bool], scores: np.ndarray, thresholds: list[float], flags: tuple[str, ...]) -> bool:
    """A window the room may be learned from: nothing true, no score at its threshold, clean audio."""
    if any(values) or any(f in flags for f in ("gap", "clipped", "nonfinite")):
        return False
    return bool(np.all(np.asarray(scores) < np.asarray(thresholds)))


def quietest_part(samples: np.ndarray, rate: int, spans: np.ndarray) -> int:
    """Index of the part with the lowest mean square (spans in seconds from the window's start)."""
    energy = [float(np.mean(np.square(samples[int(a * rate):max(int(a * rate) + 1, int(b * rate))],
                                      dtype=np.float64))) for a, b in spans]
    return int(np.argmin(energy))
