"""Where the node's audio comes from: a microphone (PortAudio) or an audio topic.

Both sources hand out timed mono chunks through ``read()``; the node's inference thread is the
only reader. Capture never waits for the model: the PortAudio callback and the topic callbacks
only copy into a buffer, and a full buffer drops its oldest audio and counts an overrun.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from clap_core.errors import ClapError

from .messages import (
    LAYOUT_MGONZS13,
    LAYOUT_ROS_DRIVERS,
    AudioMessageError,
    RawPcmInfo,
    decode_mgonzs13,
    decode_raw_pcm,
    stamp_to_seconds,
)

Log = Callable[[str, str], None]  # (level: "info"|"warn"|"error", message)


def _print_log(level: str, message: str) -> None:
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


@dataclass(frozen=True)
class SourceHealth:
    """What diagnostics report about a source; ``state`` is one of the STATE_* names."""

    kind: str
    name: str
    state: str
    message: str
    sample_rate: int = 0
    overruns: int = 0
    dropped_s: float = 0.0
    retries: int = 0
    last_audio_age_s: float | None = None


STATE_STARTING, STATE_RUNNING, STATE_ERROR, STATE_SILENT, STATE_STOPPED = (
    "starting", "running", "error", "silent", "stopped",
)


class AudioSource(Protocol):
    """What the node needs from a source."""

    def start(self) -> None: ...
    def read(self, timeout: float) -> list[AudioChunk]: ...
    def health(self) -> SourceHealth: ...
    def stop(self) -> None: ...


class SourceError(ClapError):
    """A source parameter is unusable (unknown device, bad topic layout)."""


class TimedRing:
    """Fixed-size float32 ring of frames written by one thread and read by another.

    Each run of frames written after ``mark_segment`` carries its own anchor time, so audio
    captured before a device restart keeps its timestamps and the gap shows up in the times.
    The lock is held only while copying.
    """

    def __init__(self, capacity_frames: int, channels: int) -> None:
        self._buf = np.zeros((max(int(capacity_frames), 1), channels), dtype=np.float32)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._written = 0  # frames ever written
        self._read = 0  # frames ever consumed (read or dropped)
        self._segments: deque[tuple[int, float, int]] = deque()  # (first frame, its time, rate)
        self.overruns = 0
        self.dropped_frames = 0
        self._last_write_wall = float("nan")

    @property
    def capacity(self) -> int:
        return self._buf.shape[0]

    def mark_segment(self, t_first: float, sample_rate: int) -> None:
        """The next written frame is captured at ``t_first`` (a new stream, or a restart)."""
        with self._lock:
            self._segments.append((self._written, t_first, sample_rate))

    def write(self, frames: np.ndarray) -> None:
        """Copy frames in; when the reader is too far behind, the oldest unread frames go."""
        n = len(frames)
        cap = self.capacity
        with self._lock:
            if n > cap:
                self.dropped_frames += n - cap
                self._written += n - cap
                frames = frames[-cap:]
                n = cap
            start = self._written % cap
            first = min(n, cap - start)
            self._buf[start:start + first] = frames[:first]
            self._buf[:n - first] = frames[first:]
            self._written += n
            unread = self._written - self._read
            if unread > cap:
                self.dropped_frames += unread - cap
                self._read += unread - cap
                self.overruns += 1
            self._last_write_wall = time.time()
        self._ready.set()

    def read(self, timeout: float) -> list[AudioChunk]:
        """Everything unread, split where the anchor time changes; [] after ``timeout`` seconds."""
        self._ready.wait(timeout)
        with self._lock:
            self._ready.clear()
            lo, hi = self._read, self._written
            if hi <= lo:
                return []
            cap = self.capacity
            idx = np.arange(lo, hi) % cap
            data = self._buf[idx].copy()
            self._read = hi
            segments = list(self._segments)
            while len(self._segments) > 1 and self._segments[1][0] <= hi:
                self._segments.popleft()
            arrival = self._last_write_wall
        return _split_by_segment(data, lo, segments, arrival)

    def wake(self) -> None:
        """Release a blocked ``read`` (used on shutdown)."""
        self._ready.set()


def _split_by_segment(data: np.ndarray, first_frame: int, segments: list[tuple[int, float, int]],
                      arrival: float) -> list[AudioChunk]:
    """Cut frames [first_frame, first_frame + len) at segment starts and time each piece."""
    if not segments:
        return []
    chunks: list[AudioChunk] = []
    end = first_frame + len(data)
    for i, (seg_start, t0, rate) in enumerate(segments):
        seg_end = segments[i + 1][0] if i + 1 < len(segments) else end
        lo, hi = max(seg_start, first_frame), min(seg_end, end)
        if hi <= lo:
            continue
        piece = data[lo - first_frame:hi - first_frame]
        mono = piece[:, 0].copy() if piece.shape[1] == 1 else piece.mean(axis=1, dtype=np.float32)
        chunks.append(AudioChunk(mono, rate, t0 + (lo - seg_start) / rate, arrival))
    return chunks


class Backoff:
    """Retry delays that double from ``initial_s`` up to ``max_s``; reset after a success."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.initial_s, self.max_s = float(initial_s), float(max(max_s, initial_s))
        self._next = self.initial_s

    def next_delay(self) -> float:
        delay, self._next = self._next, min(self._next * 2.0, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.initial_s


def parse_device(device: str) -> int | str | None:
    """Node parameter → sounddevice device: '' = default input, digits = index, else a name."""
    device = device.strip()
    if not device:
        return None
    return int(device) if device.lstrip("-").isdigit() else device


class MicrophoneSource:
    """PortAudio capture with a supervisor thread that reopens a failed device with back-off.

    The stream callback only copies frames into the ring and notes the time; everything else
    (opening, checking, logging, retrying) happens in the supervisor thread.
    """

    FIRST_CALLBACK_TIMEOUT_S = 5.0  # PulseAudio needs up to ~2 s for the first block

    def __init__(
        self,
        device: str = "",
        sample_rate: int = 0,
        channels: int = 1,
        ring_seconds: float = 30.0,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 30.0,
        stall_timeout_s: float = 2.0,
        log: Log = _print_log,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._device = parse_device(device)
        self._name = device.strip() or "default"
        self._want_rate = int(sample_rate)
        self._channels = max(int(channels), 1)
        self._ring_seconds = float(ring_seconds)
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._stall_timeout_s = float(stall_timeout_s)
        self._log = log
        self._clock = clock
        self._ring: TimedRing | None = None
        self._stream: Any = None
        self._rate = 0
        self._state, self._message = STATE_STARTING, f"opening microphone '{self._name}'"
        self._retries = 0
        self._pa_overflows = 0
        self._opened_at = 0.0
        self._last_callback: float | None = None
        self._new_segment = False
        self._had_failure = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="mic-supervisor", daemon=True)

    # -- the PortAudio callback: copy and timestamp, nothing else -------------------------------
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self._pa_overflows += 1
        if self._new_segment:  # first block of this stream: anchor its first sample in time
            self._ring.mark_segment(self._clock() - frames / self._rate, self._rate)
            self._new_segment = False
        self._ring.write(indata)
        self._last_callback = time.monotonic()

    # -- supervisor ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                problem = self._open() if self._stream is None else self._check()
            except Exception as exc:  # noqa: BLE001 - the supervisor must outlive any surprise
                problem = f"microphone '{self._name}': unexpected {type(exc).__name__}: {_one_line(exc)}"
            if problem is None:
                self._stop.wait(0.1)
                continue
            self._close()
            self._had_failure = True
            self._retries += 1
            delay = self._backoff.next_delay()
            self._set_state(STATE_ERROR, f"{problem}; retrying in {delay:.1f} s", "error")
            self._stop.wait(delay)
        self._close()
        self._set_state(STATE_STOPPED, "stopped", None)

    def _open(self) -> str | None:
        """Open and start the stream; returns a problem description instead of raising."""
        import sounddevice as sd

        try:
            if self._had_failure:  # PortAudio lists devices once: re-scan after a failure
                sd._terminate()
                sd._initialize()
            info = sd.query_devices(self._device, kind="input")
            rate = self._want_rate or int(info["default_samplerate"])
            if self._ring is None or self._rate != rate:
                self._ring = TimedRing(int(self._ring_seconds * rate), self._channels)
            self._rate = rate
            self._new_segment = True
            self._last_callback = None
            self._stream = sd.InputStream(
                device=self._device, channels=self._channels, samplerate=rate,
                dtype="float32", callback=self._callback,
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError, OSError) as exc:
            self._stream = None
            return f"cannot open microphone '{self._name}': {_one_line(exc)}"
        self._opened_at = time.monotonic()
        self._set_state(STATE_STARTING, f"microphone '{info['name']}' opened at {rate} Hz, waiting for audio", "info")
        return None

    def _check(self) -> str | None:
        """A running stream is healthy while PortAudio calls back regularly."""
        now = time.monotonic()
        if not self._stream.active:
            return f"microphone '{self._name}' stopped delivering audio (device gone?)"
        last = self._last_callback
        if last is None:
            if now - self._opened_at > self.FIRST_CALLBACK_TIMEOUT_S:
                return f"microphone '{self._name}' opened but delivered no audio in {self.FIRST_CALLBACK_TIMEOUT_S:.0f} s"
        elif now - last > self._stall_timeout_s:
            return f"microphone '{self._name}' delivered no audio for {now - last:.1f} s (device gone?)"
        elif self._state != STATE_RUNNING:
            verb = "resumed" if self._had_failure else "capturing"
            self._set_state(STATE_RUNNING, f"microphone '{self._name}' {verb} at {self._rate} Hz", "info")
            self._backoff.reset()
        return None

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001 - a dead device may fail to close; it is gone anyway
                pass

    def _set_state(self, state: str, message: str, level: str | None) -> None:
        changed = (state, message) != (self._state, self._message)
        self._state, self._message = state, message
        if level and changed:
            self._log(level, message)

    # -- reader side ---------------------------------------------------------------------------
    def read(self, timeout: float) -> list[AudioChunk]:
        ring = self._ring
        if ring is None:
            self._stop.wait(timeout)
            return []
        return ring.read(timeout)

    def health(self) -> SourceHealth:
        ring = self._ring
        age = None if self._last_callback is None else time.monotonic() - self._last_callback
        return SourceHealth(
            kind="microphone",
            name=self._name,
            state=self._state,
            message=self._message,
            sample_rate=self._rate,
            overruns=(ring.overruns if ring else 0) + self._pa_overflows,
            dropped_s=(ring.dropped_frames / self._rate) if ring and self._rate else 0.0,
            retries=self._retries,
            last_audio_age_s=age,
        )

    def stop(self) -> None:
        self._stop.set()
        if self._ring is not None:
            self._ring.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


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


class TopicSource:
    """Audio from ``audio_common_msgs`` messages, in whichever layout is installed.

    mgonzs13: ``AudioStamped`` on ``topic`` (format and rate in every message; header stamp =
    first sample). ros-drivers: ``AudioData`` (raw PCM bytes) on ``topic`` and ``AudioInfo`` on
    ``info_topic``; until an AudioInfo arrives, ``fallback_rate``/``fallback_channels`` (S16LE)
    are assumed if set. Subscriptions use the sensor-data QoS (best effort), which matches
    reliable and best-effort publishers alike.
    """

    def __init__(
        self,
        node: Any,
        layout: str,
        topic: str,
        info_topic: str = "audio/audio_info",
        silence_timeout_s: float = 2.0,
        queue_seconds: float = 30.0,
        fallback_rate: int = 0,
        fallback_channels: int = 1,
        log: Log = _print_log,
    ) -> None:
        if layout not in (LAYOUT_MGONZS13, LAYOUT_ROS_DRIVERS):
            raise SourceError(f"unknown audio_common_msgs layout '{layout}'")
        self._node = node
        self._layout = layout
        self._topic = topic
        self._info_topic = info_topic
        self._silence_timeout_s = float(silence_timeout_s)
        self._queue = ChunkQueue(queue_seconds)
        self._log = log
        self._clock = StreamClock()
        self._raw_info: RawPcmInfo | None = (
            RawPcmInfo(int(fallback_rate), max(int(fallback_channels), 1), "S16LE") if fallback_rate > 0 else None
        )
        self._subscriptions: list[Any] = []
        self._last_arrival: float | None = None
        self._rate = 0
        self._error: str | None = None
        self._lock = threading.Lock()

    @property
    def resolved_topic(self) -> str:
        return self._subscriptions[0].topic_name if self._subscriptions else self._topic

    def start(self) -> None:
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        from rclpy.qos import QoSProfile, qos_profile_sensor_data

        # Sensor-data QoS (best effort, volatile: matches any publisher), with a deeper history so a
        # burst of small chunks is not dropped while the executor thread is busy.
        qos = QoSProfile(depth=100, reliability=qos_profile_sensor_data.reliability,
                         durability=qos_profile_sensor_data.durability)

        # Own group: audio keeps flowing while the node's other callbacks (a reload) run.
        group = MutuallyExclusiveCallbackGroup()

        def subscribe(msg_type: Any, topic: str, callback: Callable[[Any], None]) -> None:
            self._subscriptions.append(self._node.create_subscription(
                msg_type, topic, callback, qos, callback_group=group))

        if self._layout == LAYOUT_MGONZS13:
            from audio_common_msgs.msg import AudioStamped

            subscribe(AudioStamped, self._topic, self.on_audio_stamped)
        else:
            from audio_common_msgs.msg import AudioData, AudioInfo

            subscribe(AudioData, self._topic, self.on_audio_data)
            subscribe(AudioInfo, self._info_topic, self.on_audio_info)

    def _now(self) -> float:
        return self._node.get_clock().now().nanoseconds * 1e-9

    # -- callbacks: decode and enqueue, never block on inference ---------------------------------
    def on_audio_stamped(self, msg: Any) -> None:
        """mgonzs13 layout; a zero stamp falls back to arrival-time counting."""
        try:
            samples, rate = decode_mgonzs13(msg.audio)
        except AudioMessageError as exc:
            self._bad_message(str(exc))
            return
        stamp = stamp_to_seconds(msg.header.stamp)
        arrival = self._now()
        t_first = stamp if stamp > 0 else self._clock.first_sample_time(arrival, len(samples), rate)
        self._accept(samples, rate, t_first, arrival)

    def on_audio_info(self, msg: Any) -> None:
        """ros-drivers layout: the format of the raw bytes, sent on its own topic."""
        try:
            info = RawPcmInfo.from_msg(msg)
        except AudioMessageError as exc:
            self._bad_message(str(exc))
            return
        if info != self._raw_info:
            self._log("info", f"audio format from {self._info_topic}: {info.sample_rate} Hz, {info.channels} ch, {info.sample_format}")
        self._raw_info = info

    def on_audio_data(self, msg: Any) -> None:
        """ros-drivers layout: raw PCM bytes without a header, timed by arrival."""
        info = self._raw_info
        if info is None:
            self._bad_message(f"no AudioInfo received on {self._info_topic} yet; set sample_rate to decode without it")
            return
        try:
            samples = decode_raw_pcm(msg.data, info)
        except AudioMessageError as exc:
            self._bad_message(str(exc))
            return
        arrival = self._now()
        t_first = self._clock.first_sample_time(arrival, len(samples), info.sample_rate)
        self._accept(samples, info.sample_rate, t_first, arrival)

    def _accept(self, samples: np.ndarray, rate: int, t_first: float, arrival: float) -> None:
        with self._lock:
            self._last_arrival = time.monotonic()
            self._rate = rate
            if self._error is not None:
                self._log("info", f"audio on {self.resolved_topic} decodes again")
            self._error = None
        if len(samples):
            self._queue.put(AudioChunk(samples, rate, t_first, time.time()))

    def _bad_message(self, problem: str) -> None:
        with self._lock:
            first = problem != self._error
            self._error = problem
        if first:
            self._log("error", f"dropping audio from {self.resolved_topic}: {problem}")

    # -- reader side ---------------------------------------------------------------------------
    def read(self, timeout: float) -> list[AudioChunk]:
        return self._queue.get_all(timeout)

    def health(self) -> SourceHealth:
        with self._lock:
            last, error, rate = self._last_arrival, self._error, self._rate
        age = None if last is None else time.monotonic() - last
        topic = self.resolved_topic
        if error is not None:
            state, message = STATE_ERROR, f"audio on {topic} cannot be used: {error}"
        elif age is None:
            state, message = STATE_SILENT, f"no audio received yet on {topic}"
        elif age > self._silence_timeout_s:
            state, message = STATE_SILENT, f"no audio on {topic} for {age:.1f} s"
        else:
            state, message = STATE_RUNNING, f"receiving audio on {topic} at {rate} Hz"
        return SourceHealth(
            kind="topic", name=topic, state=state, message=message, sample_rate=rate,
            overruns=self._queue.overruns, dropped_s=self._queue.dropped_s, last_audio_age_s=age,
        )

    def stop(self) -> None:
        self._queue.wake()
        for sub in self._subscriptions:
            self._node.destroy_subscription(sub)
        self._subscriptions.clear()
