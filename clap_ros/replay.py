"""Offline replay: a bag or an audio file through the same `PredicateEngine` the live node runs.

Chunks go in exactly as the node would receive them (message by message, with their stamps), as
fast as the CPU allows; the engine does the windowing, scoring and tracking.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from clap_core.audio_io import load_audio
from clap_core.predicates import PredicateEngine, WindowResult

from .audio_sources import AudioChunk
from .bag_io import AudioStream, BagError, read_bag_audio

FILE_CHUNK_S = 10.0  # an audio file is pushed in pieces of this length (bounded memory)


@dataclass
class ReplaySource:
    """What is being replayed and its chunks (an iterator, consumed once)."""

    path: Path
    description: str
    chunks: Iterator[AudioChunk]
    stream: AudioStream | None = None


@dataclass
class ReplayStats:
    audio_s: float = 0.0
    windows: int = 0
    t_first: float | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (time from start, length s)


def open_source(path: str | Path, topic: str | None = None) -> ReplaySource:
    """A rosbag2 bag folder (or its .mcap/.db3 file) or a plain audio file."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag directory or audio file")
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        path = path.parent
    if path.is_dir():
        stream, chunks = read_bag_audio(path, topic)
        desc = f"{path} ({stream.storage}, {stream.layout} layout, {stream.topic}, {stream.messages} messages)"
        return ReplaySource(path, desc, chunks, stream)
    wave, rate = load_audio(path)
    step = int(FILE_CHUNK_S * rate)
    chunks = (AudioChunk(wave[i:i + step], rate, i / rate) for i in range(0, len(wave), step))
    return ReplaySource(path, f"{path} (audio file, {rate} Hz, {len(wave) / rate:.1f} s)", chunks)


def replay(engine: PredicateEngine, source: ReplaySource, stats: ReplayStats | None = None
           ) -> Iterator[WindowResult]:
    """Every window result of the recording, in order; `stats` collects totals and gaps."""
    stats = stats if stats is not None else ReplayStats()
    engine.reset()
    n_gaps = len(engine.windower.gaps)
    for chunk in source.chunks:
        if stats.t_first is None:
            stats.t_first = chunk.t_first
        stats.audio_s += len(chunk.samples) / chunk.sample_rate
        for result in engine.push(chunk.samples, chunk.sample_rate, chunk.t_first):
            stats.windows += 1
            yield result
    for result in engine.flush():
        stats.windows += 1
        yield result
    t0 = stats.t_first or 0.0
    stats.gaps = [(t - t0, length) for t, length in engine.windower.gaps[n_gaps:]]
