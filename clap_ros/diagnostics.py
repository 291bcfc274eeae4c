"""The node's health as diagnostic_msgs: the audio source and the inference loop, one status each.

Statistics are gathered by the inference thread and read by the diagnostics timer, so the
counters live behind a lock and the message is built from a snapshot.
"""
from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .source_health import STATE_ERROR, STATE_RUNNING, SourceHealth

if TYPE_CHECKING:
    from .bag_recorder import RecorderHealth

OK, WARN, ERROR = b"\x00", b"\x01", b"\x02"  # diagnostic_msgs/DiagnosticStatus levels


@dataclass
class InferenceSnapshot:
    """A consistent copy of the inference counters."""

    windows: int = 0
    last_inference_s: float = math.nan
    mean_inference_s: float = math.nan
    latency_p50_s: float = math.nan
    latency_p95_s: float = math.nan
    level_dbfs: float = math.nan
    last_flags: tuple[str, ...] = ()
    flag_counts: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    last_error: str = ""
    predicates: int = 0
    config: str = ""
    reload: str = ""


class InferenceStats:
    """Counters written by the inference thread (one window at a time)."""

    def __init__(self, latency_window: int = 200) -> None:
        self._lock = threading.Lock()
        self._s = InferenceSnapshot()
        self._inference_total = 0.0
        self._latencies: deque[float] = deque(maxlen=latency_window)
        self._flags: Counter[str] = Counter()
        self._errors_seen = 0  # errors already reported at WARN/ERROR once

    def window(self, inference_s: float, level_dbfs: float, flags: list[str], latency_s: float) -> None:
        with self._lock:
            s = self._s
            s.windows += 1
            if "skipped" not in flags:
                s.last_inference_s = inference_s
                self._inference_total += inference_s
            s.level_dbfs = level_dbfs
            s.last_flags = tuple(flags)
            self._flags.update(flags)
            self._latencies.append(latency_s)

    def error(self, message: str) -> None:
        with self._lock:
            self._s.errors += 1
            self._s.last_error = message

    def config(self, path: str, predicates: int, reload: str) -> None:
        with self._lock:
            self._s.config, self._s.predicates, self._s.reload = path, predicates, reload

    def snapshot(self) -> InferenceSnapshot:
        with self._lock:
            s = InferenceSnapshot(**{k: getattr(self._s, k) for k in self._s.__dataclass_fields__})
            scored = s.windows - self._flags.get("skipped", 0)
            s.mean_inference_s = self._inference_total / scored if scored > 0 else math.nan
            s.flag_counts = dict(self._flags)
            lat = sorted(self._latencies)
        if lat:
            s.latency_p50_s = lat[len(lat) // 2]
            s.latency_p95_s = lat[min(len(lat) - 1, int(math.ceil(0.95 * len(lat))) - 1)]
        return s


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "n/a" if not math.isfinite(x) else f"{x:.4g}"
    return str(x)


def _status(name: str, hardware_id: str, level: bytes, message: str, values: dict[str, Any]) -> Any:
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    st = DiagnosticStatus()
    st.level, st.name, st.message, st.hardware_id = level, name, message, hardware_id
    st.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
    return st


def source_status(node_name: str, h: SourceHealth) -> Any:
    """Running → OK; starting/silent/conflict → WARN; error → ERROR (the message says what is wrong)."""
    level = {STATE_RUNNING: OK, STATE_ERROR: ERROR}.get(h.state, WARN)
    return _status(
        f"{node_name}: audio source", h.name, level, h.message,
        {"source": h.kind, "name": h.name, "state": h.state, "sample_rate": h.sample_rate,
         "overruns": h.overruns, "dropped_s": round(h.dropped_s, 3), "retries": h.retries,
         "dropped_messages": h.dropped_messages,
         "last_audio_age_s": h.last_audio_age_s if h.last_audio_age_s is not None else math.nan},
    )


def inference_status(node_name: str, s: InferenceSnapshot, new_errors: bool) -> Any:
    """WARN for flagged (non-finite/clipped) windows, ERROR when inference failed since last time."""
    bad = [f for f in s.last_flags if f in ("nonfinite", "clipped", "skipped")]
    if new_errors:
        level, message = ERROR, f"inference failed: {s.last_error}"
    elif bad:
        level, message = WARN, f"last window flagged: {', '.join(s.last_flags)}"
    elif s.windows == 0:
        level, message = OK, "waiting for the first full window"
    else:
        level, message = OK, f"{s.predicates} predicates, {s.windows} windows"
    values = {
        "windows": s.windows, "predicates": s.predicates, "config": s.config, "last_reload": s.reload,
        "inference_s_last": s.last_inference_s, "inference_s_mean": s.mean_inference_s,
        "latency_s_p50": s.latency_p50_s, "latency_s_p95": s.latency_p95_s,
        "level_dbfs": s.level_dbfs, "last_flags": ",".join(s.last_flags), "errors": s.errors,
    }
    values.update({f"windows_{k}": v for k, v in sorted(s.flag_counts.items())})
    return _status(f"{node_name}: inference", node_name, level, message, values)


def background_status(node_name: str, b: Any) -> Any:
    """The adaptive background (clap_core.predicates.background.BackgroundState): always OK, the
    message says whether the room is learned; `last_update_t` is the audio time last learned from."""
    if not b.enabled:
        message = "off"
    elif b.learned:
        message = f"learned from {b.windows_seen} quiet windows"
    else:
        message = f"warming up: {b.windows_seen} of {b.warmup_windows} quiet windows"
    return _status(f"{node_name}: adaptive background", node_name, OK, message,
                   {"enabled": b.enabled, "learned": b.learned, "windows_seen": b.windows_seen,
                    "warmup_windows": b.warmup_windows,
                    "last_update_t": b.last_update_t if b.last_update_t is not None else math.nan,
                    "resets": b.resets})


def recorder_status(node_name: str, h: RecorderHealth) -> Any:
    """The black-box recorder: OK while recording, ERROR once a write failed (the message says
    why: disk full, read-only file system)."""
    if h.recording:
        level, message = OK, f"recording into {h.path}"
    else:
        level, message = (ERROR, f"recorder {h.error}") if h.error else (OK, "recording finished")
    return _status(f"{node_name}: recorder", h.path, level, message,
                   {"path": h.path, "recording": h.recording, "messages": h.messages, "error": h.error})


def diagnostic_array(stamp: Any, statuses: list[Any]) -> Any:
    from diagnostic_msgs.msg import DiagnosticArray

    arr = DiagnosticArray()
    arr.header.stamp = stamp
    arr.status = statuses
    return arr
