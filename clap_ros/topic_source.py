"""Audio from an `audio_common_msgs` topic, in either of the two layouts that share that name.

The subscription callbacks only decode and enqueue; the node's inference thread reads the queue.
When several publishers share the topic, the source follows one of them (`PublisherFollower`):
interleaving two streams' stamps would restart the windows at every message and publish nothing.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

from .audio_chunks import AudioChunk, ChunkQueue, Log, StreamClock, print_log
from .messages import (
    LAYOUT_MGONZS13,
    LAYOUT_ROS_DRIVERS,
    AudioMessageError,
    RawPcmInfo,
    decode_mgonzs13,
    decode_raw_pcm,
    stamp_to_seconds,
)
from .source_health import STATE_CONFLICT, STATE_ERROR, STATE_RUNNING, STATE_SILENT, SourceError, SourceHealth


class PublisherFollower:
    """Which publisher's audio to use: the one heard first, until it has been silent `handover_s`
    (killed, restarted: a restarted publisher is a new one). Audio from the others is dropped and
    counted, so diagnostics can say that the topic is shared."""

    def __init__(self, handover_s: float) -> None:
        self.handover_s = float(handover_s)
        self._gid: bytes | None = None
        self._last = -float("inf")  # monotonic time of the followed publisher's last message
        self.last_foreign = -float("inf")
        self.dropped = 0
        self._heard: dict[bytes | None, float] = {}  # publisher → when it last sent

    def accept(self, gid: bytes | None, now: float) -> bool:
        """True if a message from `gid` (None: the middleware does not say) is to be used."""
        self._heard[gid] = now
        if gid is None or gid == self._gid or now - self._last > self.handover_s:
            self._gid, self._last = gid, now
            return True
        self.dropped += 1
        self.last_foreign = now
        return False

    def senders(self, now: float) -> int:
        """Publishers heard within `handover_s` (the graph's count also holds killed ones for a while)."""
        self._heard = {g: t for g, t in self._heard.items() if now - t <= self.handover_s}
        return len(self._heard)


def _gid(info: Any) -> bytes | None:
    gid = info.get("publisher_gid") if isinstance(info, dict) else None
    return bytes(gid["data"]) if isinstance(gid, dict) and "data" in gid else None


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
        log: Log = print_log,
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
        self._follower = PublisherFollower(self._silence_timeout_s)

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

        def subscribe(msg_type: Any, topic: str, callback: Callable[..., None]) -> None:
            self._subscriptions.append(self._node.create_subscription(
                msg_type, topic, callback, qos, callback_group=group))

        if self._layout == LAYOUT_MGONZS13:
            from audio_common_msgs.msg import AudioStamped

            subscribe(AudioStamped, self._topic, self._followed(self.on_audio_stamped))
        else:
            from audio_common_msgs.msg import AudioData, AudioInfo

            subscribe(AudioData, self._topic, self._followed(self.on_audio_data))
            subscribe(AudioInfo, self._info_topic, self.on_audio_info)

    def _followed(self, callback: Callable[[Any], None]) -> Callable[[Any, Any], None]:
        """`callback` for messages of the followed publisher only (rclpy passes the message info
        to a two-argument callback)."""
        def on_message(msg: Any, info: Any) -> None:
            with self._lock:
                use = self._follower.accept(_gid(info), time.monotonic())
            if use:
                callback(msg)
        return on_message

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
            now = time.monotonic()
            foreign, dropped, senders = self._follower.last_foreign, self._follower.dropped, self._follower.senders(now)
        age = None if last is None else now - last
        topic = self.resolved_topic
        if now - foreign <= self._silence_timeout_s:
            state, message = STATE_CONFLICT, (
                f"{senders} publishers on {topic}: using the audio of one, dropping the others' "
                f"({dropped} messages so far)")
        elif error is not None:
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
            dropped_messages=dropped,
        )

    def stop(self) -> None:
        self._queue.wake()
        for sub in self._subscriptions:
            self._node.destroy_subscription(sub)
        self._subscriptions.clear()
