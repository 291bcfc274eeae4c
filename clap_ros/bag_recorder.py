"""The node's black-box recorder: what it heard and what it said, into one mcap bag.

Given a directory (node parameter `record_dir`), the node writes every audio chunk the engine
received (as mgonzs13 `AudioStamped`, mono int16, header stamp = first sample), every
`/audio_predicates` message and every `/diagnostics` message into
`<record_dir>/clap_<UTC time>/`, a standard rosbag2 bag that `ros2 bag play` and
`clap-predicates replay` read. The message definitions are stored in the bag, so it can be read
without this project's interface packages.

Faults: an MCAP chunk is written out every `FLUSH_S` seconds, so a killed node (SIGKILL, OOM)
loses at most that much, and replay reads the unclosed bag (`bag_recovery`). A write that fails
(disk full, file system turned read-only) stops the recorder, not the node; diagnostics say why.
"""
from __future__ import annotations

import errno
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from clap_core.errors import ClapError

from .bag_formats import LAYOUT_STAMPED
from .bag_writer import AudioBagWriter
from .bag_recovery import flush_chunk

AUDIO_TOPIC = "/audio"


class RecorderError(ClapError):
    """The recorder cannot write (folder not writable, unknown message type)."""


def msg_type_name(msg: Any) -> str:
    """rclpy message → `pkg/msg/Name` (the ROS 2 type name stored in bags)."""
    cls = type(msg)
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


def _share_dirs(package: str) -> list[Path]:
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(package)))
    except Exception:  # noqa: BLE001 - not found or AMENT_PREFIX_PATH unset: try the venv
        pass
    dirs.append(Path(sys.prefix) / "share" / package)
    return dirs


FLUSH_S = 1.0  # at most this much of the recording is lost when the node is killed


@dataclass(frozen=True)
class RecorderHealth:
    """What diagnostics say about the recorder."""

    path: str
    recording: bool
    messages: int
    error: str = ""  # why it stopped; empty while recording and after a clean close


class BagRecorder:
    """Thread-safe writer of audio chunks and rclpy messages into one bag.

    Every `flush_s` seconds the pending MCAP chunk is written out (`bag_recovery.flush_chunk`),
    so a killed node leaves a bag readable up to then. A write that fails (disk full, file system
    gone read-only) stops the recorder for good, with the reason in `health()` and one call of
    `on_error`; the node goes on without it.
    """

    def __init__(self, directory: str | Path, storage: str = "mcap", flush_s: float = FLUSH_S,
                 on_error: Callable[[str], None] | None = None) -> None:
        root = Path(directory).expanduser()
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.path = _new_bag_path(root)
            self._audio = AudioBagWriter(self.path, LAYOUT_STAMPED, storage, topic=AUDIO_TOPIC)
        except OSError as exc:
            raise RecorderError(f"record_dir {root}: cannot create it ({exc.strerror or exc})") from None
        self._store = self._audio.store
        self._conns: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._error = ""
        self._on_error = on_error
        self._flush_s = float(flush_s)
        self._flushed = time.monotonic()
        self.messages = 0

    def audio(self, samples: np.ndarray, sample_rate: int, t_first: float) -> None:
        """One chunk exactly as the engine received it (mono; stored as int16)."""
        with self._lock:
            if not self._closed and len(samples):
                self._guarded(lambda: self._audio.write(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0),
                                                        sample_rate, t_first, log_time=time.time()))

    def message(self, topic: str, msg: Any) -> None:
        """Any rclpy message, logged at the current time."""
        from rclpy.serialization import serialize_message

        data = serialize_message(msg)
        with self._lock:
            if not self._closed:
                self._guarded(lambda: self._audio.writer.write(
                    self._conns.get(topic) or self._add(topic, msg_type_name(msg)), time.time_ns(), data))

    def _guarded(self, write: Callable[[], None]) -> None:
        """Run one write (lock held), flush the chunk when due; any failure stops the recorder."""
        try:
            write()
            self.messages += 1
            if time.monotonic() - self._flushed >= self._flush_s:
                flush_chunk(self._audio.writer)
                self._flushed = time.monotonic()
        except (OSError, RecorderError) as exc:
            self._stop(exc)

    def _stop(self, exc: Exception) -> None:
        reason = f"{exc.strerror} ({errno.errorcode.get(exc.errno, exc.errno)})" if isinstance(exc, OSError) \
            and exc.strerror else str(exc)
        self._closed = True
        self._error = f"stopped after {self.messages} messages: {reason}"
        try:
            self._audio.writer.abort()  # the file keeps every chunk flushed before the failure
        except OSError:
            pass
        if self._on_error is not None:
            self._on_error(f"recorder {self.path}: {self._error}; the node goes on without recording")

    def _add(self, topic: str, msgtype: str) -> Any:
        if msgtype not in self._store.types:
            self._register(msgtype)
        conn = self._audio.writer.add_connection(topic, msgtype, typestore=self._store)
        self._conns[topic] = conn
        return conn

    def _register(self, msgtype: str) -> None:
        """Add a project type (e.g. clap_ros_interfaces/msg/AudioPredicates) from its installed .msg."""
        from rosbags.typesys import get_types_from_msg

        package, _, name = msgtype.split("/")
        for share in _share_dirs(package):
            msg_file = share / "msg" / f"{name}.msg"
            if msg_file.is_file():
                self._store.register(get_types_from_msg(msg_file.read_text(encoding="utf-8"), msgtype))
                return
        raise RecorderError(f"cannot record {msgtype}: its .msg definition is not installed "
                            f"(looked in {', '.join(str(d) for d in _share_dirs(package))})")

    def health(self) -> RecorderHealth:
        with self._lock:
            return RecorderHealth(str(self.path), not self._closed, self.messages, self._error)

    def close(self) -> None:
        """Finish the bag (summary, metadata.yaml); a failure here is reported like one while recording."""
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    self._audio.close()
                except OSError as exc:
                    self._stop(exc)


def _new_bag_path(root: Path) -> Path:
    path = root / time.strftime("clap_%Y%m%d_%H%M%S", time.gmtime())
    n = 1
    while path.exists():
        n += 1
        path = root / (time.strftime("clap_%Y%m%d_%H%M%S", time.gmtime()) + f"_{n}")
    return path


def open_recorder(record_dir: str, log: Any = None) -> BagRecorder | None:
    """The node's hook: None when recording is off (empty `record_dir`)."""
    if not record_dir:
        return None
    recorder = BagRecorder(record_dir, on_error=log.error if log is not None else None)
    if log is not None:
        log.info(f"recording audio, /audio_predicates and /diagnostics into {recorder.path}")
    return recorder
