"""Audio chunks in, sliding model-rate windows out, with times taken from the audio itself.

Chunks arrive at any rate and size (a microphone callback, a ROS message, a whole file). They are
resampled once, as a stream, to the model's rate; windows of `window_s` slide by `hop_s`; a window's
times come from the first chunk's timestamp plus the sample count, so they are audio time, not
wall-clock time. Jumps in the chunk timestamps are gaps: short ones are filled with silence and
flagged, long ones (or time going backwards by more than `max_fill_s`) start a new segment, also
flagged; a short step backwards (stamp jitter) keeps the sample count and flags the window —
never glued silently. Samples that are NaN/inf or clipped are marked, and every window that holds one says so.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..resample import half_length, ratio, resample_poly

# Per-sample marks carried beside the audio (bit flags).
GAP, NONFINITE, CLIPPED = 1, 2, 4
CLIP_LEVEL = 0.999  # |x| at or above this counts as clipped (full scale is 1.0)
CLIP_FRACTION = 1e-3  # a window is "clipped" when more than this share of it is
HOP_S = 0.5  # seconds between windows unless told otherwise (the node's hop_s)
GAP_RECORDS = 10_000  # gaps a Windower remembers (replay takes them per recording)


@dataclass
class Window:
    """One analysis window at the model's rate. `samples` is finite (bad samples zeroed)."""

    samples: np.ndarray
    t_start: float
    t_end: float
    flags: tuple[str, ...]
    level_dbfs: float
    segment: int = 0  # counts the windower's segments: a new one means a new source or a break

    @property
    def usable(self) -> bool:
        return "nonfinite" not in self.flags


class StreamResampler:
    """Polyphase resampling of a stream chunk by chunk, identical to resampling it whole.

    Converts only whole blocks of `down` input samples and keeps a context of input samples on
    both sides, so every output sample sees the same filter taps it would see in one long
    `resample_poly` call (no clicks at chunk borders). Holds back about 10–20 ms of audio.
    """

    def __init__(self, from_sr: int, to_sr: int) -> None:
        self.up, self.down = ratio(from_sr, to_sr)
        half = half_length(self.up, self.down) / self.up  # the filter's half-length, in input samples
        self.ctx = math.ceil((half + 2) / self.down) * self.down
        self._buf = np.zeros(0, np.float32)
        self._mask = np.zeros(0, np.uint8)
        self._pos = 0  # index in _buf of the first sample not yet converted

    @property
    def identity(self) -> bool:
        return self.up == self.down

    def process(self, x: np.ndarray, mask: np.ndarray, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Feed input samples (and their marks); returns the output samples now complete."""
        if self.identity:
            return x.astype(np.float32, copy=False), mask
        self._buf = np.concatenate([self._buf, x.astype(np.float32, copy=False)])
        self._mask = np.concatenate([self._mask, mask])
        right = 0 if final else self.ctx
        avail = len(self._buf) - self._pos - right
        n = avail if final else (avail // self.down) * self.down
        if n <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.uint8)
        left = min(self._pos, self.ctx)
        seg = self._buf[self._pos - left:self._pos + n + right]
        y = resample_poly(seg, self.up, self.down)
        a = left * self.up // self.down
        b = a + -(-n * self.up // self.down)
        y = y[a:b]
        src = self._pos + (np.arange(len(y)) * self.down) // self.up
        ymask = self._mask[np.minimum(src, len(self._mask) - 1)]
        self._pos += n
        drop = self._pos - self.ctx
        if drop > 0:
            self._buf, self._mask, self._pos = self._buf[drop:], self._mask[drop:], self._pos - drop
        return y, ymask


class Windower:
    """Ring of model-rate samples cut into sliding windows; see the module docstring."""

    def __init__(self, rate: int, window_s: float, hop_s: float = HOP_S,
                 gap_tolerance_s: float = 0.02, max_fill_s: float = 1.0) -> None:
        if window_s <= 0 or hop_s <= 0:
            raise ValueError("window_s and hop_s must be positive")
        self.rate = int(rate)
        self.window = max(1, round(window_s * self.rate))
        self.hop = max(1, round(hop_s * self.rate))
        self.gap_tolerance_s = gap_tolerance_s
        self.max_fill_s = max_fill_s
        # (audio time of the gap, its length in s; <0: backwards), the latest GAP_RECORDS only: a
        # node nobody drains would otherwise keep one per stamp jump of a jittery publisher for good.
        self.gaps: deque[tuple[float, float]] = deque(maxlen=GAP_RECORDS)
        self.segment = 0
        self.reset()

    def take_gaps(self) -> list[tuple[float, float]]:
        """The gaps recorded since the last call (at most the latest GAP_RECORDS), and forget them."""
        taken = list(self.gaps)
        self.gaps.clear()
        return taken

    def reset(self) -> None:
        """Forget all audio (next push starts a new segment, not flagged)."""
        self._in_sr: int | None = None
        self._resampler: StreamResampler | None = None
        self._t0 = 0.0  # audio time of segment sample 0
        self._n_in = 0  # input samples in this segment (incl. fill)
        self._buf = np.zeros(0, np.float32)
        self._mask = np.zeros(0, np.uint8)
        self._buf_start = 0  # segment index of _buf[0]
        self._next = 0  # segment index where the next window starts
        self._pending_gap = False

    @property
    def next_expected_t(self) -> float | None:
        """Audio time the next chunk should start at (None before the first chunk)."""
        if self._in_sr is None:
            return None
        return self._t0 + self._n_in / self._in_sr

    def push(self, samples: np.ndarray, sample_rate: int, t_first: float) -> list[Window]:
        """Add a chunk starting at audio time `t_first`; returns the windows it completed."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        sample_rate = int(sample_rate)
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        windows: list[Window] = []
        if self._in_sr is None:
            self._start_segment(sample_rate, t_first, flagged=False)
        elif sample_rate != self._in_sr:
            windows += self._end_segment()
            self._start_segment(sample_rate, t_first, flagged=True)
        else:
            windows += self._check_gap(t_first, len(x))
        mask = np.zeros(len(x), np.uint8)
        bad = ~np.isfinite(x)
        if bad.any():
            x = np.where(bad, np.float32(0.0), x)
            mask[bad] |= NONFINITE
        mask[np.abs(x) >= CLIP_LEVEL] |= CLIPPED
        self._feed(x, mask)
        return windows + self._cut()

    def flush(self) -> list[Window]:
        """End of the stream: convert the held-back samples and return any window they complete."""
        if self._resampler is None:
            return []
        y, m = self._resampler.process(np.zeros(0, np.float32), np.zeros(0, np.uint8), final=True)
        self._append(y, m)
        return self._cut()

    # -- internals ---------------------------------------------------------------------------
    def _start_segment(self, sample_rate: int, t_first: float, flagged: bool) -> None:
        self.reset()
        self.segment += 1
        self._in_sr = sample_rate
        self._resampler = StreamResampler(sample_rate, self.rate)
        self._t0 = float(t_first)
        self._pending_gap = flagged

    def _end_segment(self) -> list[Window]:
        return self.flush()

    def _check_gap(self, t_first: float, n: int) -> list[Window]:
        expected = self.next_expected_t
        assert expected is not None and self._in_sr is not None
        jump = float(t_first) - expected
        tolerance = max(self.gap_tolerance_s, 0.5 * n / self._in_sr)
        if abs(jump) <= tolerance:
            return []
        self.gaps.append((expected, jump))
        if -self.max_fill_s <= jump < 0:  # stamps ran back a little (jitter, overlap): keep counting
            self._pending_gap = True
            return []
        if 0 < jump <= self.max_fill_s:
            fill = round(jump * self._in_sr)
            self._feed(np.zeros(fill, np.float32), np.full(fill, GAP, np.uint8))
            return self._cut()
        windows = self._end_segment()
        sr = self._in_sr
        self._start_segment(sr, t_first, flagged=True)
        return windows

    def _feed(self, x: np.ndarray, mask: np.ndarray) -> None:
        assert self._resampler is not None
        self._n_in += len(x)
        y, m = self._resampler.process(x, mask)
        self._append(y, m)

    def _append(self, y: np.ndarray, m: np.ndarray) -> None:
        if not len(y):
            return
        if self._pending_gap:
            m = m.copy()
            m[0] |= GAP
            self._pending_gap = False
        self._buf = np.concatenate([self._buf, y])
        self._mask = np.concatenate([self._mask, m])

    def _cut(self) -> list[Window]:
        out = []
        end_avail = self._buf_start + len(self._buf)
        while self._next + self.window <= end_avail:
            a = self._next - self._buf_start
            out.append(self._make_window(self._buf[a:a + self.window], self._mask[a:a + self.window],
                                         self._next))
            self._next += self.hop
        keep_from = self._next - self._buf_start
        if keep_from > 0:
            keep_from = min(keep_from, len(self._buf))
            self._buf, self._mask = self._buf[keep_from:], self._mask[keep_from:]
            self._buf_start += keep_from
        return out

    def _make_window(self, samples: np.ndarray, mask: np.ndarray, start: int) -> Window:
        bits = int(np.bitwise_or.reduce(mask)) if len(mask) else 0
        flags = []
        if bits & GAP:
            flags.append("gap")
        if bits & NONFINITE:
            flags.append("nonfinite")
        if bits & CLIPPED and np.count_nonzero(mask & CLIPPED) > CLIP_FRACTION * len(mask):
            flags.append("clipped")
        t_start = self._t0 + start / self.rate
        return Window(samples=samples.copy(), t_start=t_start, t_end=t_start + self.window / self.rate,
                      flags=tuple(flags), level_dbfs=level_dbfs(samples), segment=self.segment)


def recording_windows(wave: np.ndarray, sample_rate: int, rate: int, window_s: float, hop_s: float = HOP_S,
                      t_first: float = 0.0) -> list[Window]:
    """Every window a stream of this recording yields (pushed whole, then flushed): the windows
    the node and replay make of it, because the resampler does not depend on chunk borders."""
    windower = Windower(rate, window_s, hop_s)
    return windower.push(wave, sample_rate, t_first) + windower.flush()


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (floored at -120)."""
    if not len(samples):
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(-120.0, 20.0 * math.log10(rms)) if rms > 0 else -120.0
