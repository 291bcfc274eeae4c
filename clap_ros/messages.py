"""Conversions between ROS messages and plain values: audio payloads in, predicate states out.

Two incompatible packages are both called ``audio_common_msgs``; only one can be installed. The
decoders below work on any object with the right attribute names (rclpy messages, rosbags
dataclasses), so both layouts are decoded by the same code whichever package is present.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clap_core.errors import ClapError

# PortAudio sample-format codes used by the mgonzs13 AudioInfo.format field.
PA_FLOAT32, PA_INT32, PA_INT16, PA_INT8, PA_UINT8 = 1, 2, 8, 16, 32
_MGONZS13_FORMATS: dict[int, tuple[str, str, float, float]] = {
    # code: (field, numpy dtype, offset, scale) → sample = (raw - offset) / scale
    PA_FLOAT32: ("float32_data", "<f4", 0.0, 1.0),
    PA_INT32: ("int32_data", "<i4", 0.0, 2.0**31),
    PA_INT16: ("int16_data", "<i2", 0.0, 2.0**15),
    PA_INT8: ("int8_data", "i1", 0.0, 2.0**7),
    PA_UINT8: ("uint8_data", "u1", 128.0, 2.0**7),
}
# Raw PCM sample formats of the ros-drivers AudioInfo.sample_format field (GStreamer names).
_RAW_FORMATS: dict[str, tuple[str, float]] = {
    "S16LE": ("<i2", 2.0**15),
    "S32LE": ("<i4", 2.0**31),
    "F32LE": ("<f4", 1.0),
    "U8": ("u1", 2.0**7),
}

LAYOUT_MGONZS13 = "mgonzs13"
LAYOUT_ROS_DRIVERS = "ros-drivers"


class AudioMessageError(ClapError):
    """An audio message cannot be decoded (unknown format, ragged channels, missing info)."""


def in_colcon_install() -> bool:
    """Started from a colcon install space (sourced setup, or the code lives under one)?"""
    import os
    from pathlib import Path

    return bool(os.environ.get("COLCON_PREFIX_PATH")) or any(
        (parent / ".colcon_install_layout").exists() for parent in Path(__file__).resolve().parents)


def interfaces_hint() -> str:
    """What builds the missing interface packages, for the set-up this node runs in."""
    if in_colcon_install():
        return ("build them in the workspace: link src/clap_ros/interfaces/clap_ros_interfaces (and, if no "
                "audio_common_msgs is installed, .../audio_common_msgs) into src/, run colcon build, then "
                "source install/setup.bash (README: ROS 2 workspace)")
    return "run scripts/setup.sh to build them into .venv (README: Two commands)"


def installed_audio_layout() -> str:
    """Which ``audio_common_msgs`` layout is importable: the topic source follows it."""
    try:
        import audio_common_msgs.msg as acm
    except ImportError:
        raise ClapError(
            "audio_common_msgs is not installed: install mgonzs13/audio_common or ros-drivers/audio_common "
            f"(rosdep installs the latter), or the project's copy: {interfaces_hint()}"
        ) from None
    if hasattr(acm, "AudioStamped") and "audio" in acm.AudioStamped.get_fields_and_field_types():
        return LAYOUT_MGONZS13
    if hasattr(acm, "AudioData") and "data" in acm.AudioData.get_fields_and_field_types():
        return LAYOUT_ROS_DRIVERS
    raise ClapError("audio_common_msgs has neither the mgonzs13 nor the ros-drivers layout")


def _to_mono(raw: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved frames → mono float32 (channel mean)."""
    channels = max(int(channels), 1)
    if raw.size % channels:
        raise AudioMessageError(f"{raw.size} samples do not split into {channels} channels")
    if channels == 1:
        return raw.astype(np.float32, copy=False)
    return raw.reshape(-1, channels).mean(axis=1, dtype=np.float32)


def decode_mgonzs13(audio: Any) -> tuple[np.ndarray, int]:
    """mgonzs13 ``Audio`` (the ``audio`` field of AudioStamped) → (mono float32, rate)."""
    info = audio.info
    spec = _MGONZS13_FORMATS.get(int(info.format))
    if spec is None:
        raise AudioMessageError(
            f"AudioInfo.format {info.format} is not supported (use 1=float32, 2=int32, 8=int16, 16=int8, 32=uint8)"
        )
    if int(info.rate) <= 0:
        raise AudioMessageError(f"AudioInfo.rate must be positive, got {info.rate}")
    field, dtype, offset, scale = spec
    raw = np.frombuffer(memoryview(getattr(audio.audio_data, field)).cast("B"), dtype=dtype)
    samples = raw.astype(np.float32)
    if offset or scale != 1.0:
        samples = (samples - np.float32(offset)) / np.float32(scale)
    return _to_mono(samples, int(info.channels)), int(info.rate)


@dataclass(frozen=True)
class RawPcmInfo:
    """What the ros-drivers layout sends on its own info topic, reduced to what decoding needs."""

    sample_rate: int
    channels: int
    sample_format: str

    @classmethod
    def from_msg(cls, info: Any) -> "RawPcmInfo":
        """Validate a ros-drivers ``AudioInfo``; only uncompressed PCM can be scored."""
        coding = str(info.coding_format).strip().lower()
        if coding not in ("wave", "wav", "raw", "pcm", ""):
            raise AudioMessageError(
                f"AudioInfo.coding_format '{info.coding_format}' is compressed; publish raw PCM "
                "(audio_capture: format:=wave sample_format:=S16LE)"
            )
        fmt = str(info.sample_format).strip().upper() or "S16LE"
        if fmt not in _RAW_FORMATS:
            raise AudioMessageError(f"AudioInfo.sample_format '{info.sample_format}' is not one of {sorted(_RAW_FORMATS)}")
        if int(info.sample_rate) <= 0 or int(info.channels) <= 0:
            raise AudioMessageError(f"AudioInfo needs positive sample_rate and channels, got {info.sample_rate}/{info.channels}")
        return cls(int(info.sample_rate), int(info.channels), fmt)


def decode_raw_pcm(data: Any, info: RawPcmInfo) -> np.ndarray:
    """ros-drivers ``AudioData.data`` (uint8[] bytes of interleaved PCM) → mono float32."""
    dtype, scale = _RAW_FORMATS[info.sample_format]
    buf = bytes(data) if isinstance(data, (list, tuple)) else memoryview(data).cast("B")
    width = np.dtype(dtype).itemsize
    if len(buf) % width:
        raise AudioMessageError(f"{len(buf)} bytes is not a whole number of {info.sample_format} samples")
    raw = np.frombuffer(buf, dtype=dtype).astype(np.float32)
    if info.sample_format == "U8":
        raw -= 128.0
    if scale != 1.0:
        raw /= np.float32(scale)
    return _to_mono(raw, info.channels)


def stamp_to_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time (or rosbags' Time) → float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def seconds_to_stamp(t: float, time_type: Any = None) -> Any:
    """Float seconds → builtin_interfaces/Time, rounding to the nearest nanosecond.

    `time_type`: the Time class to build (rosbags' for bags); default the rclpy message."""
    if time_type is None:
        from builtin_interfaces.msg import Time as time_type

    ns = int(round(t * 1e9))
    return time_type(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def predicates_msg(result: Any, frame_id: str) -> Any:
    """Engine ``WindowResult`` → clap_ros_interfaces/AudioPredicates (stamp = end of window).

    Scores of a skipped window stay NaN (its flags say why): a 0 would read as "not heard".
    """
    from clap_ros_interfaces.msg import AudioPredicates

    msg = AudioPredicates()
    msg.header.stamp = seconds_to_stamp(result.t_end)
    msg.header.frame_id = frame_id
    msg.window_start = seconds_to_stamp(result.t_start)
    msg.window_end = seconds_to_stamp(result.t_end)
    names = list(result.names)
    fired = set(result.fired)
    msg.names = names
    msg.values = [bool(v) for v in result.values]
    msg.scores = [float(s) for s in result.scores]
    msg.thresholds = [float(t) for t in result.thresholds]
    msg.fired = [n in fired for n in names]
    msg.flags = [str(f) for f in result.flags]
    msg.level_dbfs = float(result.level_dbfs)
    msg.inference_s = float(result.inference_s)
    msg.part_start = [seconds_to_stamp(t) for t in result.part_start]
    msg.part_end = [seconds_to_stamp(t) for t in result.part_end]
    return msg
