"""The node's black-box recorder: what it heard and what it said, into one mcap bag.

Given a directory (node parameter `record_dir`), the node writes every audio chunk the engine
received (as mgonzs13 `AudioStamped`, mono int16, header stamp = first sample), every
`/audio_predicates` message and every `/diagnostics` message into
`<record_dir>/clap_<UTC time>/`, a standard rosbag2 bag that `ros2 bag play` and
`clap-predicates replay` read. The message definitions are stored in the bag, so it can be read
without this project's interface packages.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from clap_core.errors import ClapError

from .bag_formats import LAYOUT_STAMPED
from .bag_writer import AudioBagWriter

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


class BagRecorder:
    """Thread-safe writer of audio chunks and rclpy messages into one bag."""

    def __init__(self, directory: str | Path, storage: str = "mcap") -> None:
        root = Path(directory).expanduser()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecorderError(f"record_dir {root}: cannot create it ({exc.strerror or exc})") from None
        path = root / time.strftime("clap_%Y%m%d_%H%M%S", time.gmtime())
        n = 1
        while path.exists():
            n += 1
            path = root / (time.strftime("clap_%Y%m%d_%H%M%S", time.gmtime()) + f"_{n}")
        self.path = path
        self._audio = AudioBagWriter(path, LAYOUT_STAMPED, storage, topic=AUDIO_TOPIC)
        self._store = self._audio.store
        self._conns: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.messages = 0

    def audio(self, samples: np.ndarray, sample_rate: int, t_first: float) -> None:
        """One chunk exactly as the engine received it (mono; stored as int16)."""
        with self._lock:
            if not self._closed and len(samples):
                self._audio.write(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0), sample_rate, t_first,
                                  log_time=time.time())
                self.messages += 1

    def message(self, topic: str, msg: Any) -> None:
        """Any rclpy message, logged at the current time."""
        from rclpy.serialization import serialize_message

        data = serialize_message(msg)
        with self._lock:
            if self._closed:
                return
            conn = self._conns.get(topic) or self._add(topic, msg_type_name(msg))
            self._audio.writer.write(conn, time.time_ns(), data)
            self.messages += 1

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

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._audio.close()


def open_recorder(record_dir: str, log: Any = None) -> BagRecorder | None:
    """The node's hook: None when recording is off (empty `record_dir`)."""
    if not record_dir:
        return None
    recorder = BagRecorder(record_dir)
    if log is not None:
        log.info(f"recording audio, /audio_predicates and /diagnostics into {recorder.path}")
    return recorder
