"""Timed mono audio chunks: what every source hands the engine, with the clocks and queue that time
and buffer them. Plain Python and NumPy — no ROS, no PortAudio — so bags, replay and tests use the
same types as the live node.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

Log = Callable[[str, str], None]  # (level: "info"|"warn"|"error", message)


def print_log(level: str, message: str) -> None:
    print(f"[{level}] {message}", flush=True)


@dataclass(frozen=True)
class AudioChunk:
    """Consecutive mono samples, the audio time (seconds) of the first one, and the wall-clock
    time at which the last one reached the node (to measure the node's own latency)."""

    samples: np.ndarray
    sample_rate: int
    t_first: float
    arrival: float = float("nan")


def coalesce(chunks: list[AudioChunk], tolerance_s: float = 0.002) -> list[AudioChunk]:
    """Join chunks that continue each other (same rate, no time gap) into one.

    A microphone or topic delivers ~50 small chunks a second; handing the engine one array per
    backlog instead of one per chunk cuts the per-chunk Python work that otherwise competes with
    inference for the interpreter. Gaps and rate changes stay separate chunks, so the engine still
    sees and reports them.
    """
    merged: list[AudioChunk] = []
    parts: list[np.ndarray] = []
    length = 0  # samples in `parts`, kept as a count rather than re-summed per chunk
    for chunk in chunks:
        if merged:
            last = merged[-1]
            end = last.t_first + length / last.sample_rate
            if chunk.sample_rate == last.sample_rate and abs(chunk.t_first - end) <= tolerance_s:
                parts.append(chunk.samples)
                length += chunk.samples.size
                merged[-1] = AudioChunk(last.samples, last.sample_rate, last.t_first, chunk.arrival)
                continue
            merged[-1] = AudioChunk(np.concatenate(parts), last.sample_rate, last.t_first, last.arrival)
        merged.append(chunk)
        parts, length = [chunk.samples], chunk.samples.size
    if merged:
        last = merged[-1]
        merged[-1] = AudioChunk(np.concatenate(parts), last.sample_rate, last.t_first, last.arrival)
    return merged


class StreamClock:
    """Times chunks that carry no usable stamp: count samples from an anchor at arrival time.

    Re-anchors when the producer pauses (arrival later than the count says) or runs far ahead
    of the clock, so a pause shows up as a gap in audio time.
    """

    def __init__(self, tolerance_s: float = 0.5) -> None:
        self._tolerance_s = tolerance_s
        self._next: float | None = None

    def first_sample_time(self, arrival: float, n: int, rate: int) -> float:
        duration = n / rate
        start = arrival - duration
        nxt = self._next
        if nxt is None or start > nxt + self._tolerance_s or nxt > arrival + self._tolerance_s:
            t = start
        else:
            t = nxt
        self._next = t + duration
        return t


class ChunkQueue:
    """Bounded (in seconds of audio) queue between ROS callbacks and the inference thread."""

    def __init__(self, max_seconds: float) -> None:
        self._max_seconds = float(max_seconds)
        self._chunks: deque[AudioChunk] = deque()
        self._seconds = 0.0
        self._cond = threading.Condition()
        self.overruns = 0
        self.dropped_s = 0.0

    def put(self, chunk: AudioChunk) -> None:
        with self._cond:
            self._chunks.append(chunk)
            self._seconds += len(chunk.samples) / chunk.sample_rate
            overflowed = False
            while self._seconds > self._max_seconds and len(self._chunks) > 1:
                old = self._chunks.popleft()
                dur = len(old.samples) / old.sample_rate
                self._seconds -= dur
                self.dropped_s += dur
                overflowed = True
            self.overruns += int(overflowed)
            self._cond.notify()

    def get_all(self, timeout: float) -> list[AudioChunk]:
        with self._cond:
            if not self._chunks:
                self._cond.wait(timeout)
            out = list(self._chunks)
            self._chunks.clear()
            self._seconds = 0.0
        return out

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
