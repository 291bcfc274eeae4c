"""Message conversions, audio buffers and node settings, without a node process.

The ros-drivers `audio_common_msgs` layout cannot be installed beside the mgonzs13 layout (same
package name; this project builds the mgonzs13 one). Its decoding path is tested with messages
built and CDR-serialized by `rosbags` from the ros-drivers .msg definitions, then fed to the same
handlers the node's subscriptions call.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
pytest.importorskip("audio_common_msgs.msg", reason="interfaces are built by scripts/setup.sh")
pytest.importorskip("clap_ros_interfaces.msg", reason="interfaces are built by scripts/setup.sh")

from clap_core.errors import ConfigError  # noqa: E402
from clap_ros.audio_chunks import AudioChunk, ChunkQueue, StreamClock  # noqa: E402
from clap_ros.microphone import TimedRing  # noqa: E402
from clap_ros.source_health import STATE_ERROR, STATE_RUNNING, STATE_SILENT, Backoff  # noqa: E402
from clap_ros.topic_source import TopicSource  # noqa: E402
from clap_ros.messages import (  # noqa: E402
    LAYOUT_MGONZS13, LAYOUT_ROS_DRIVERS, AudioMessageError, RawPcmInfo, decode_mgonzs13, decode_raw_pcm,
    installed_audio_layout, predicates_msg,
)
from clap_ros.node_settings import NodeSettings, coerce  # noqa: E402

# ros-drivers/audio_common (ros2 branch) definitions, as published.
ROS_DRIVERS_MSGS = {
    "audio_common_msgs/msg/AudioData": "uint8[] data\n",
    "audio_common_msgs/msg/AudioInfo": ("uint8 channels\nuint32 sample_rate\nstring sample_format\n"
                                        "uint32 bitrate\nstring coding_format\n"),
}


@pytest.fixture(scope="module")
def ros_drivers_store():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.EMPTY)
    for name, text in ROS_DRIVERS_MSGS.items():
        store.register(get_types_from_msg(text, name))
    return store


def _through_cdr(store, msg, typename: str):
    """Serialize as a ros-drivers publisher would, deserialize as a subscriber sees it."""
    return store.deserialize_cdr(store.serialize_cdr(msg, typename), typename)


def test_installed_layout_is_mgonzs13() -> None:
    assert installed_audio_layout() == LAYOUT_MGONZS13


def test_mgonzs13_int16_stereo_over_cdr_decodes_to_mono() -> None:
    from audio_common_msgs.msg import AudioStamped
    from rclpy.serialization import deserialize_message, serialize_message

    left = np.array([1000, -2000, 32767, 0], np.int16)
    right = np.array([3000, 2000, 32767, -32768], np.int16)
    msg = AudioStamped()
    msg.audio.info.format, msg.audio.info.channels, msg.audio.info.rate = 8, 2, 44100
    msg.audio.audio_data.int16_data = np.stack([left, right], axis=1).reshape(-1)
    got = deserialize_message(serialize_message(msg), AudioStamped)
    mono, rate = decode_mgonzs13(got.audio)
    assert rate == 44100
    np.testing.assert_allclose(mono, (left.astype(np.float32) + right) / 2 / 32768, atol=1e-7)


def test_mgonzs13_float32_and_bad_format() -> None:
    from audio_common_msgs.msg import AudioStamped

    msg = AudioStamped()
    msg.audio.info.format, msg.audio.info.channels, msg.audio.info.rate = 1, 1, 16000
    msg.audio.audio_data.float32_data = np.array([0.5, -0.25, 0.0], np.float32)
    mono, rate = decode_mgonzs13(msg.audio)
    assert rate == 16000 and mono.tolist() == [0.5, -0.25, 0.0]
    msg.audio.info.format = 4  # PortAudio int24: not a field of AudioData
    with pytest.raises(AudioMessageError, match="format 4"):
        decode_mgonzs13(msg.audio)
    msg.audio.info.format, msg.audio.info.channels = 1, 2  # 3 samples do not split into 2 channels
    with pytest.raises(AudioMessageError, match="2 channels"):
        decode_mgonzs13(msg.audio)


def test_ros_drivers_s16le_bytes_decode(ros_drivers_store) -> None:
    types = ros_drivers_store.types
    info_msg = _through_cdr(ros_drivers_store, types["audio_common_msgs/msg/AudioInfo"](
        channels=2, sample_rate=48000, sample_format="S16LE", bitrate=0, coding_format="wave"),
        "audio_common_msgs/msg/AudioInfo")
    frames = np.array([[16384, -16384], [32767, 32767], [-32768, 0]], "<i2")
    data_msg = _through_cdr(ros_drivers_store, types["audio_common_msgs/msg/AudioData"](
        data=np.frombuffer(frames.tobytes(), np.uint8)), "audio_common_msgs/msg/AudioData")
    info = RawPcmInfo.from_msg(info_msg)
    assert info == RawPcmInfo(48000, 2, "S16LE")
    mono = decode_raw_pcm(data_msg.data, info)
    np.testing.assert_allclose(mono, frames.astype(np.float32).mean(axis=1) / 32768, atol=1e-7)
    with pytest.raises(AudioMessageError, match="whole number"):
        decode_raw_pcm(bytes(5), info)


def test_ros_drivers_compressed_stream_is_rejected_with_advice(ros_drivers_store) -> None:
    mp3 = ros_drivers_store.types["audio_common_msgs/msg/AudioInfo"](
        channels=1, sample_rate=16000, sample_format="S16LE", bitrate=128, coding_format="mp3")
    with pytest.raises(AudioMessageError, match="coding_format 'mp3'.*raw PCM"):
        RawPcmInfo.from_msg(mp3)


def test_ros_drivers_handlers_of_the_topic_source(client, ros_drivers_store) -> None:
    """The node's ros-drivers callbacks, fed rosbags-decoded messages: info first, then timed audio."""
    types = ros_drivers_store.types
    src = TopicSource(client.node, LAYOUT_ROS_DRIVERS, "audio/audio", silence_timeout_s=5.0, log=lambda *a: None)

    def data(samples: np.ndarray):
        raw = np.frombuffer(samples.astype("<i2").tobytes(), np.uint8)
        return _through_cdr(ros_drivers_store, types["audio_common_msgs/msg/AudioData"](data=raw),
                            "audio_common_msgs/msg/AudioData")

    chunk = (np.arange(1600) % 100 * 100).astype(np.int16)
    src.on_audio_data(data(chunk))  # no AudioInfo yet: dropped, and diagnostics say why
    assert src.read(0.0) == []
    health = src.health()
    assert health.state == STATE_ERROR and "AudioInfo" in health.message
    src.on_audio_info(_through_cdr(ros_drivers_store, types["audio_common_msgs/msg/AudioInfo"](
        channels=1, sample_rate=16000, sample_format="S16LE", bitrate=0, coding_format="wave"),
        "audio_common_msgs/msg/AudioInfo"))
    src.on_audio_data(data(chunk))
    src.on_audio_data(data(chunk))
    chunks = src.read(0.1)
    assert [c.sample_rate for c in chunks] == [16000, 16000]
    np.testing.assert_allclose(chunks[0].samples, chunk / 32768.0, atol=1e-7)
    assert chunks[1].t_first == pytest.approx(chunks[0].t_first + 0.1)  # counted, not jittery arrival
    assert src.health().state == STATE_RUNNING


def test_mgonzs13_handler_uses_the_stamp_and_reports_silence(client) -> None:
    from audio_common_msgs.msg import AudioStamped

    src = TopicSource(client.node, LAYOUT_MGONZS13, "audio", silence_timeout_s=0.2, log=lambda *a: None)
    assert src.health().state == STATE_SILENT and "no audio received yet" in src.health().message
    msg = AudioStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1234, 500_000_000
    msg.audio.info.format, msg.audio.info.channels, msg.audio.info.rate = 8, 1, 16000
    msg.audio.audio_data.int16_data = np.zeros(160, np.int16)
    src.on_audio_stamped(msg)
    (chunk,) = src.read(0.1)
    assert chunk.t_first == pytest.approx(1234.5) and len(chunk.samples) == 160
    client.spin_for(0.4)
    health = src.health()
    assert health.state == STATE_SILENT and "no audio on" in health.message


def _result(**kw):
    from clap_core.predicates import WindowResult

    base = dict(t_start=100.0, t_end=105.25, names=["pour", "knock"], scores=[0.8, float("nan")],
                values=[True, False], thresholds=[0.5, 0.6], fired=["knock"], flags=["clipped"],
                inference_s=0.03, level_dbfs=-21.5, part_start=[102.4, 100.0], part_end=[103.375, 105.25])
    return WindowResult(**{**base, **kw})


def test_predicates_msg_carries_the_window() -> None:
    msg = predicates_msg(_result(), "mic_link")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (105, 250_000_000)
    assert msg.window_end == msg.header.stamp and (msg.window_start.sec, msg.window_start.nanosec) == (100, 0)
    assert msg.header.frame_id == "mic_link"
    assert msg.names == ["pour", "knock"] and list(msg.values) == [True, False]
    assert msg.scores[0] == pytest.approx(0.8) and math.isnan(msg.scores[1])
    assert list(msg.fired) == [False, True] and list(msg.flags) == ["clipped"]
    assert msg.thresholds[1] == pytest.approx(0.6) and msg.level_dbfs == pytest.approx(-21.5)
    assert [(t.sec, t.nanosec) for t in msg.part_start] == [(102, 400_000_000), (100, 0)]
    assert [(t.sec, t.nanosec) for t in msg.part_end] == [(103, 375_000_000), (105, 250_000_000)]


def test_timed_ring_counts_overruns_and_keeps_segment_times() -> None:
    ring = TimedRing(capacity_frames=100, channels=2)
    ring.mark_segment(50.0, 10)
    ring.write(np.ones((60, 2), np.float32))
    ring.write(np.full((60, 2), 3.0, np.float32))  # 120 unread > 100: the oldest 20 frames go
    assert ring.overruns == 1 and ring.dropped_frames == 20
    (chunk,) = ring.read(0.0)
    assert len(chunk.samples) == 100 and chunk.t_first == pytest.approx(52.0)  # frame 20 at 10 Hz
    assert chunk.samples[0] == 1.0 and chunk.samples[-1] == 3.0  # downmixed mean of equal channels
    ring.write(np.zeros((5, 2), np.float32))
    ring.mark_segment(90.0, 10)  # the device restarted: a new anchor
    ring.write(np.zeros((5, 2), np.float32))
    first, second = ring.read(0.0)
    assert first.t_first == pytest.approx(62.0) and len(first.samples) == 5
    assert second.t_first == pytest.approx(90.0) and len(second.samples) == 5
    assert ring.read(0.0) == []


def test_chunk_queue_drops_oldest_beyond_its_seconds() -> None:

    q = ChunkQueue(max_seconds=1.0)
    for i in range(15):
        q.put(AudioChunk(np.zeros(100, np.float32), 1000, float(i) / 10))
    chunks = q.get_all(0.0)
    assert len(chunks) == 10 and chunks[0].t_first == pytest.approx(0.5)
    assert q.overruns == 5 and q.dropped_s == pytest.approx(0.5)


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next_delay() == 0.5


def test_stream_clock_counts_samples_and_reanchors_after_a_pause() -> None:
    clock = StreamClock(tolerance_s=0.5)
    assert clock.first_sample_time(10.1, 1600, 16000) == pytest.approx(10.0)
    assert clock.first_sample_time(10.23, 1600, 16000) == pytest.approx(10.1)  # jitter ignored
    assert clock.first_sample_time(15.0, 1600, 16000) == pytest.approx(14.9)  # a pause: new anchor


@pytest.mark.parametrize("change, field", [
    (dict(config=""), "'config'"),
    (dict(source="usb"), "'source'"),
    (dict(window_s=5.0, hop_s=6.0), "'hop_s'"),
    (dict(hop_s=31.0), "'hop_s'"),
    (dict(window_s=0.1), "'window_s'"),
    (dict(retry_max_s=0.0), "'retry_max_s'"),
])
def test_node_settings_name_the_bad_parameter(change, field) -> None:
    with pytest.raises(ConfigError, match=f"parameter {field}"):
        NodeSettings(**{"config": "x.yaml", **change}).validate()


def test_window_follows_the_model_clip_length() -> None:
    from types import SimpleNamespace

    from clap_ros.predicate_node import model_window

    model_2023 = SimpleNamespace(clip_seconds=7.0)
    assert model_window(NodeSettings(config="x.yaml"), model_2023) == 7.0
    assert model_window(NodeSettings(config="x.yaml", window_s=3.0), model_2023) == 3.0
    with pytest.raises(ConfigError, match="hop_s"):
        model_window(NodeSettings(config="x.yaml", hop_s=8.0), model_2023)


def test_parameter_types_accept_the_unambiguous() -> None:
    assert coerce("window_s", float, 5) == 5.0 and isinstance(coerce("window_s", float, 5), float)
    assert coerce("device", str, 2) == "2"  # `-p device:=2` arrives as an int
    with pytest.raises(ConfigError, match="parameter 'hop_s': expected a number, got 'fast'"):
        coerce("hop_s", float, "fast")
    with pytest.raises(ConfigError, match="parameter 'channels': expected an integer"):
        coerce("channels", int, True)


def test_launch_text_converts_to_the_parameter_type() -> None:
    """The launch file passes every argument as text (see launch/predicates.launch.py)."""
    assert coerce("window_s", float, " 2.5 ") == 2.5 and coerce("sample_rate", int, "16000") == 16000
    assert coerce("publish_bools", bool, "False") is False and coerce("publish_bools", bool, "true") is True
    assert coerce("device", str, "0") == "0"
    with pytest.raises(ConfigError, match="parameter 'sample_rate': expected an integer, got '16k'"):
        coerce("sample_rate", int, "16k")


def test_adaptive_background_state_in_diagnostics() -> None:
    """Warming up, then learned: windows seen, the audio time last learned from, resets."""
    from clap_core.predicates.background import AdaptiveBackground, AdaptiveBackgroundConfig
    from clap_ros.diagnostics import background_status

    bg = AdaptiveBackground(AdaptiveBackgroundConfig(enabled=True, warmup_windows=2))
    bg.observe(np.ones(4), quiet=True, t_end=12.5)
    warming = background_status("n", bg.state())
    assert warming.name == "n: adaptive background" and warming.message == "warming up: 1 of 2 quiet windows"
    bg.observe(np.ones(4), quiet=False, t_end=13.0)  # something fired: not learned
    bg.observe(np.ones(4), quiet=True, t_end=13.5)
    values = {kv.key: kv.value for kv in background_status("n", bg.state()).values}
    assert background_status("n", bg.state()).message == "learned from 2 quiet windows"
    assert values == {"enabled": "True", "learned": "True", "windows_seen": "2", "warmup_windows": "2",
                      "last_update_t": "13.5", "resets": "0"}
    bg.reset()
    assert {kv.key: kv.value for kv in background_status("n", bg.state()).values}["last_update_t"] == "n/a"
