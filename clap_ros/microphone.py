"""Audio from a microphone through PortAudio (`sounddevice`), with a supervisor that reopens a failed
device with back-off.

Capture never waits for the model: the PortAudio callback only copies into a ring, and a full ring
drops its oldest audio and counts an overrun.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable

import numpy as np

from .audio_chunks import AudioChunk, Log, print_log
from .source_health import STATE_ERROR, STATE_RUNNING, STATE_STARTING, STATE_STOPPED, Backoff, SourceHealth, one_line

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
        log: Log = print_log,
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
                problem = f"microphone '{self._name}': unexpected {type(exc).__name__}: {one_line(exc)}"
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
            return f"cannot open microphone '{self._name}': {one_line(exc)}"
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
