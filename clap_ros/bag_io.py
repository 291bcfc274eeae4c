"""rosbag2 bags of audio, read with `rosbags` — no ROS message packages needed (writing: bag_writer.py).

Reading uses the message definitions stored in the bag itself (bags from Iron and later, and every
bag `rosbags` writes, carry them), so a laptop without `audio_common_msgs` can replay a robot's
recording. Both incompatible `audio_common_msgs` layouts are recognised by their types:

- ``stamped`` (mgonzs13): ``AudioStamped`` — samples, format and rate in every message; the header
  stamp is the time of the first sample.
- ``raw`` (ros-drivers): ``AudioData`` (raw PCM bytes, or ``AudioDataStamped``) with ``AudioInfo``
  on its own topic; unstamped chunks are timed by their receive time in the bag.

Decoding goes through the node's own decoders (`clap_ros.messages`), so a replayed bag and the
live topic become the same samples.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from clap_core.errors import ClapError

from .audio_chunks import AudioChunk, StreamClock
from .bag_formats import (LAYOUT_RAW, LAYOUT_STAMPED, RAW_DATA, RAW_INFO, RAW_STAMPED, STAMPED, BagError,
                          typestore_for)
from .messages import (AudioMessageError, RawPcmInfo, decode_mgonzs13, decode_raw_pcm,
                       stamp_to_seconds)


@dataclass(frozen=True)
class AudioStream:
    """The audio found in a bag."""

    path: Path
    storage: str
    layout: str
    topic: str
    msgtype: str
    messages: int
    info_topic: str | None = None
    note: str = ""  # e.g. how much of a recording that was never closed could be read


def _open_reader(path: Path) -> Any:
    """An opened AnyReader; every rosbags/sqlite failure becomes a one-line BagError."""
    from rosbags.highlevel import AnyReader

    if not path.exists():
        raise BagError(f"{path}: no such bag directory or audio file")
    if not (path / "metadata.yaml").is_file():
        mcaps = sorted(path.glob("*.mcap"))
        if len(mcaps) == 1:
            from .bag_recovery import open_unterminated

            return open_unterminated(mcaps[0])
        raise BagError(f"{path}: not a rosbag2 bag (metadata.yaml is missing); if the recording was cut "
                       "short, run `ros2 bag reindex` on it first")
    layout = _layout_hint(path)
    reader = AnyReader([path], default_typestore=typestore_for(layout))
    try:
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises many types; all mean "bad bag"
        raise BagError(f"{path}: cannot open the bag ({_one_line(exc)}); it may be truncated or damaged") from None
    return reader


def _layout_hint(path: Path) -> str:
    """Which layout's definitions to assume for bags without stored definitions (pre-Iron)."""
    try:
        meta = (path / "metadata.yaml").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return LAYOUT_STAMPED
    return LAYOUT_STAMPED if "AudioStamped" in meta else LAYOUT_RAW


def find_audio(reader: Any, path: Path, topic: str | None = None) -> AudioStream:
    """The audio topic of a bag: the one given, or the only one of a known audio type."""
    conns = reader.connections
    known = {STAMPED: LAYOUT_STAMPED, RAW_DATA: LAYOUT_RAW, RAW_STAMPED: LAYOUT_RAW}
    candidates = [c for c in conns if c.msgtype in known]
    if topic is not None:
        chosen = [c for c in conns if c.topic == topic]
        if not chosen:
            raise BagError(f"{path}: no topic {topic}; topics: {_topic_list(conns)}")
        if chosen[0].msgtype not in known:
            raise BagError(f"{path}: topic {topic} has type {chosen[0].msgtype}, not an audio type "
                           f"({', '.join(sorted(known))})")
        candidates = chosen
    if not candidates:
        raise BagError(f"{path}: no audio topic (AudioStamped, or AudioData with AudioInfo) in this bag; "
                       f"topics: {_topic_list(conns)}")
    topics = sorted({c.topic for c in candidates})
    if len(topics) > 1:
        raise BagError(f"{path}: several audio topics ({', '.join(topics)}); choose one with --topic")
    conn = candidates[0]
    layout = known[conn.msgtype]
    info_topic = None
    if layout == LAYOUT_RAW:
        infos = [c.topic for c in conns if c.msgtype == RAW_INFO]
        info_topic = _pick_info_topic(conn.topic, infos)
    storage = "mcap" if any(p.suffix == ".mcap" for p in path.iterdir()) else "sqlite3"
    count = sum(c.msgcount for c in conns if c.topic == conn.topic)
    from .bag_recovery import UnterminatedReader

    note = reader.note if isinstance(reader, UnterminatedReader) else ""
    return AudioStream(path, storage, layout, conn.topic, conn.msgtype, count, info_topic, note)


def _pick_info_topic(audio_topic: str, infos: list[str]) -> str | None:
    if not infos:
        return None
    parent = audio_topic.rsplit("/", 1)[0]
    same = [t for t in infos if t.rsplit("/", 1)[0] == parent]
    return (same or infos)[0]


def read_bag_audio(path: str | Path, topic: str | None = None, raw_rate: int = 0, raw_channels: int = 1
                   ) -> tuple[AudioStream, Iterator[AudioChunk]]:
    """Open a bag and return what audio it holds plus an iterator of its decoded chunks.

    `raw_rate`/`raw_channels`: for raw-layout bags recorded without their AudioInfo (it is sent
    once, at start), the format to assume (S16LE), as the node's `sample_rate` parameter does.

    Chunk times: the header stamp when the message has one (non-zero), else the receive time in
    the bag minus the chunk's duration, counted on by samples (`StreamClock`, as the live node does).
    A change of sample rate mid-stream is an error: split the bag, or replay the parts separately.
    """
    path = Path(path)
    reader = _open_reader(path)
    try:
        stream = find_audio(reader, path, topic)
    except BagError:
        reader.close()
        raise
    fallback = RawPcmInfo(int(raw_rate), max(int(raw_channels), 1), "S16LE") if raw_rate > 0 else None
    return stream, _chunks(reader, stream, fallback)


def _chunks(reader: Any, stream: AudioStream, info: RawPcmInfo | None = None) -> Iterator[AudioChunk]:
    clock: StreamClock | None = None
    rate: int | None = None
    wanted = [c for c in reader.connections if c.topic in (stream.topic, stream.info_topic)]
    try:
        for conn, log_ns, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            arrival = log_ns * 1e-9
            if conn.msgtype == RAW_INFO:
                info = _raw_info(msg, stream)
                continue
            samples, sr, stamp = _decode(msg, conn.msgtype, info, stream)
            if not len(samples):
                continue
            if rate is not None and sr != rate:
                raise BagError(f"{stream.path}: mixed sample rates on {stream.topic}: {rate} Hz, then {sr} Hz "
                               f"at {arrival:.3f} s; split the bag and replay the parts separately")
            rate = sr
            if stamp <= 0 and clock is None:  # half a chunk: one dropped message shows as a gap
                clock = StreamClock(tolerance_s=0.5 * len(samples) / sr)
            t_first = stamp if stamp > 0 else clock.first_sample_time(arrival, len(samples), sr)  # type: ignore[union-attr]
            yield AudioChunk(samples, sr, t_first)
    except (sqlite3.DatabaseError, EOFError, OSError, ValueError, KeyError, AssertionError) as exc:
        if isinstance(exc, BagError):
            raise
        raise BagError(f"{stream.path}: the bag is damaged or truncated ({_one_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - rosbags' reader and serde errors
        if isinstance(exc, ClapError):
            raise
        raise BagError(f"{stream.path}: cannot read messages ({_one_line(exc)}); the bag may be truncated") from None
    finally:
        reader.close()


def _raw_info(msg: Any, stream: AudioStream) -> RawPcmInfo:
    try:
        return RawPcmInfo.from_msg(msg)
    except AudioMessageError as exc:
        raise BagError(f"{stream.path}: {stream.info_topic}: {exc}") from None


def _decode(msg: Any, msgtype: str, info: RawPcmInfo | None, stream: AudioStream
            ) -> tuple[np.ndarray, int, float]:
    try:
        if msgtype == STAMPED:
            samples, sr = decode_mgonzs13(msg.audio)
            return samples, sr, stamp_to_seconds(msg.header.stamp)
        if info is None:
            raise BagError(f"{stream.path}: audio on {stream.topic} comes before any AudioInfo "
                           f"({stream.info_topic or 'no AudioInfo topic in the bag'}); the raw bytes cannot be "
                           "decoded without it — record the info topic too, or give the format "
                           "(replay --sample-rate R [--channels C], S16LE assumed)")
        if msgtype == RAW_STAMPED:
            return decode_raw_pcm(msg.audio.data, info), info.sample_rate, stamp_to_seconds(msg.header.stamp)
        return decode_raw_pcm(msg.data, info), info.sample_rate, 0.0
    except AudioMessageError as exc:
        raise BagError(f"{stream.path}: {stream.topic}: {exc}") from None


def _topic_list(conns: list[Any]) -> str:
    return ", ".join(f"{c.topic} ({c.msgtype})" for c in conns) or "none"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
