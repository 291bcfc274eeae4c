"""Offline replay: a bag or an audio file through the same `PredicateEngine` the live node runs.

Chunks go in exactly as the node would receive them (message by message, with their stamps), as
fast as the CPU allows; the engine does the windowing, scoring and tracking. The only difference
from live: a few windows are scored per model call (`push_many`), and the chunks are read and
decoded a little ahead in a worker thread (`clap_core.prefetch`) while the model runs.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from clap_core.audio_io import load_audio
from clap_core.predicates import PredicateEngine, WindowResult
from clap_core.prefetch import prefetched
from clap_core.protocol import InferenceModel

from .audio_chunks import AudioChunk
from .bag_io import AudioStream, BagError, read_bag_audio

FILE_CHUNK_S = 10.0  # an audio file is read in pieces of this length (bounded memory)
BLOCK_WINDOWS = 4  # chunks are windowed one by one, as live, but scored about this many at a time
# (measured on the test bags: 4 per model call beats 1 and 16 — 69x vs 45x and 60x real time per core)
PREFETCH_CHUNKS = 64  # chunks read and decoded ahead of the engine


@dataclass
class ReplaySource:
    """What is being replayed and its chunks (an iterator, consumed once)."""

    path: Path
    description: str
    chunks: Iterator[AudioChunk]
    stream: AudioStream | None = None
    n_chunks: int | None = None  # how many chunks there are, for a progress bar


@dataclass
class ReplayStats:
    audio_s: float = 0.0
    windows: int = 0
    t_first: float | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (time from start, length s)


@contextmanager
def torch_threads_for(model: InferenceModel) -> Iterator[None]:
    """One torch thread while the model runs, when it prefers one (`prefers_one_torch_thread`: an
    ONNX Runtime audio tower inside torch, the default model's YAMNet); the previous setting is
    restored afterwards.

    ONNX Runtime brings its own thread pool; torch's OpenMP pool then only handles the small
    front-end and projection ops and spin-waits against everything else on the machine. Replay of
    the test bags beside two busy processes: 29x real time with 2 torch threads, 100x with 1
    (docs/bags.md); equal on an idle machine. Torch-only towers (CNN14) keep all threads.
    """
    if not model.prefers_one_torch_thread:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def open_source(path: str | Path, topic: str | None = None, raw_rate: int = 0, raw_channels: int = 1
                ) -> ReplaySource:
    """A rosbag2 bag folder (or its .mcap/.db3 file) or a plain audio file; `raw_rate` and
    `raw_channels` describe raw-layout audio recorded without its AudioInfo."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag directory or audio file")
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        path = path.parent
    if path.is_dir():
        stream, chunks = read_bag_audio(path, topic, raw_rate, raw_channels)
        desc = f"{path} ({stream.storage}, {stream.layout} layout, {stream.topic}, {stream.messages} messages)"
        if stream.note:
            desc += f"; {stream.note}"
        return ReplaySource(path, desc, chunks, stream, stream.messages)
    wave, rate = load_audio(path)
    step = int(FILE_CHUNK_S * rate)
    chunks = (AudioChunk(wave[i:i + step], rate, i / rate) for i in range(0, len(wave), step))
    return ReplaySource(path, f"{path} (audio file, {rate} Hz, {len(wave) / rate:.1f} s)", chunks,
                        n_chunks=-(-len(wave) // step))


def replay(engine: PredicateEngine, source: ReplaySource, stats: ReplayStats | None = None,
           block_windows: int = BLOCK_WINDOWS, prefetch: int = PREFETCH_CHUNKS) -> Iterator[WindowResult]:
    """Every window result of the recording, in order; `stats` collects totals and gaps. About
    `block_windows` hops of audio are pushed at a time (scored in model calls of up to
    `engine.batch` windows); `prefetch` chunks are read ahead in a worker thread (0: none)."""
    stats = stats if stats is not None else ReplayStats()
    engine.reset()
    engine.windower.take_gaps()  # only this recording's
    block: list[tuple] = []
    block_s, block_max = 0.0, block_windows * engine.hop_s
    for chunk in prefetched(source.chunks, prefetch):
        if stats.t_first is None:
            stats.t_first = chunk.t_first
        seconds = len(chunk.samples) / chunk.sample_rate
        stats.audio_s += seconds
        block.append((chunk.samples, chunk.sample_rate, chunk.t_first))
        block_s += seconds
        if block_s >= block_max:
            yield from _count(engine.push_many(block), stats)
            block, block_s = [], 0.0
    yield from _count(engine.push_many(block), stats)
    yield from _count(engine.flush(), stats)
    t0 = stats.t_first or 0.0
    stats.gaps = [(t - t0, length) for t, length in engine.windower.take_gaps()]


def _count(results: list[WindowResult], stats: ReplayStats) -> Iterator[WindowResult]:
    for result in results:
        stats.windows += 1
        yield result
