"""Audio bags written with `rosbags`: mono int16 chunks in either layout, mcap or sqlite3.

Used by `clap-predicates bag-from-audio`, the node's recorder and the tests' bag builders.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .bag_formats import (LAYOUT_STAMPED, LAYOUTS, RAW_DATA, RAW_INFO, STAMPED, STORAGES, BagError,
                          typestore_for)
from .messages import PA_INT16, seconds_to_stamp


def open_writer(path: Path, storage: str = "mcap") -> Any:
    """A new rosbags Writer (mcap or sqlite3), opened; the folder must not exist yet."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if path.exists():
        raise BagError(f"{path}: already exists; choose a new --out folder")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=9, storage_plugin=plugin)
    writer.open()
    return writer


class AudioBagWriter:
    """Writes mono int16 audio chunks into a bag in one of the two layouts."""

    def __init__(self, path: str | Path, layout: str = LAYOUT_STAMPED, storage: str = "mcap",
                 topic: str | None = None, frame_id: str = "microphone") -> None:
        if layout not in LAYOUTS:
            raise BagError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.layout = layout
        self.store = typestore_for(layout)
        self.writer = open_writer(Path(path), storage)
        self.frame_id = frame_id
        self._info_rate: int | None = None
        if layout == LAYOUT_STAMPED:
            self.topic = topic or "/audio"
            self.conn = self.writer.add_connection(self.topic, STAMPED, typestore=self.store)
        else:
            self.topic = topic or "/audio/audio"
            info_topic = self.topic.rsplit("/", 1)[0] + "/audio_info"
            self.conn = self.writer.add_connection(self.topic, RAW_DATA, typestore=self.store)
            self.info_conn = self.writer.add_connection(info_topic, RAW_INFO, typestore=self.store)

    def write(self, samples: np.ndarray, sample_rate: int, t_first: float, log_time: float | None = None) -> None:
        """One message: `samples` (mono float32) starting at `t_first`; logged at `log_time`
        (default: the chunk's end, when a live publisher would have sent it)."""
        pcm = np.clip(np.round(np.asarray(samples, np.float32) * 32768.0), -32768, 32767).astype("<i2")
        t_log = t_first + len(pcm) / sample_rate if log_time is None else log_time
        log_ns = int(round(t_log * 1e9))
        T = self.store.types
        if self.layout == LAYOUT_STAMPED:
            msg = T[STAMPED](
                header=T["std_msgs/msg/Header"](stamp=seconds_to_stamp(t_first, T["builtin_interfaces/msg/Time"]),
                                                frame_id=self.frame_id),
                audio=T["audio_common_msgs/msg/Audio"](
                    audio_data=T["audio_common_msgs/msg/AudioData"](
                        float32_data=np.zeros(0, np.float32), int32_data=np.zeros(0, np.int32),
                        int16_data=pcm.astype(np.int16), int8_data=np.zeros(0, np.int8),
                        uint8_data=np.zeros(0, np.uint8)),
                    info=T["audio_common_msgs/msg/AudioInfo"](format=PA_INT16, channels=1, rate=int(sample_rate),
                                                              chunk=len(pcm))))
            self.writer.write(self.conn, log_ns, self.store.serialize_cdr(msg, STAMPED))
            return
        if self._info_rate != sample_rate:  # the driver publishes info first; a bag keeps it
            info = T[RAW_INFO](channels=1, sample_rate=int(sample_rate), sample_format="S16LE",
                               bitrate=16 * int(sample_rate), coding_format="wave")
            self.writer.write(self.info_conn, log_ns - 1, self.store.serialize_cdr(info, RAW_INFO))
            self._info_rate = sample_rate
        msg = T[RAW_DATA](data=np.frombuffer(pcm.tobytes(), np.uint8))
        self.writer.write(self.conn, log_ns, self.store.serialize_cdr(msg, RAW_DATA))

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> "AudioBagWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_audio_bag(path: str | Path, samples: np.ndarray, sample_rate: int, layout: str = LAYOUT_STAMPED,
                    storage: str = "mcap", t0: float = 1.7e9, chunk: int = 1024,
                    drop: set[int] | None = None) -> Path:
    """Write one recording as a bag of `chunk`-sample messages starting at audio time `t0`.

    `drop` lists message indices to leave out (simulated dropped messages, for gap tests).
    """
    path = Path(path)
    with AudioBagWriter(path, layout, storage) as w:
        for i, start in enumerate(range(0, len(samples), chunk)):
            if drop and i in drop:
                continue
            w.write(samples[start:start + chunk], sample_rate, t0 + start / sample_rate)
    return path
