"""The node's parameters: declaration, conversion and every check that can run before the model loads.

A bad value must end the node in a second with one line naming the parameter, not after the model
has loaded or with a traceback. Values arrive typed from `-p name:=value` and as strings from the
launch file (which passes every argument as text so that the node, not launch, names a bad one).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from clap_core.devices import CHOICES as DEVICE_CHOICES
from clap_core.devices import parse_device
from clap_core.errors import ConfigError
from clap_core.precision import check_node_precision

SOURCES = ("microphone", "topic")
RUNTIMES = ("auto", "onnx", "torch")
POSITIVE = ("silence_timeout_s", "retry_initial_s", "retry_max_s", "buffer_s", "diagnostics_period_s")
TOPICS = ("audio_topic", "audio_info_topic")
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def setting(default: Any, description: str) -> Any:
    """A node parameter: its default and its description, written once (ROS docs, launch arguments)."""
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class NodeSettings:
    """Every node parameter; the node declares them and the launch file makes its arguments from them."""

    config: str = setting(
        "", "Predicates YAML (see config/predicates.yaml). Set it at run time to reload the predicates.")
    weights: str = setting(
        "default", "Model weights: 'default' (embedded), a registered name such as 'msclap-2022', or a path.")
    source: str = setting(
        "microphone", "Where audio comes from: 'microphone' (PortAudio) or 'topic' (audio_common_msgs).")
    audio_topic: str = setting(
        "audio", "Audio topic for source=topic (AudioStamped, or AudioData for the ros-drivers layout).")
    audio_info_topic: str = setting(
        "audio/audio_info", "AudioInfo topic of the ros-drivers layout (format of the raw bytes).")
    device: str = setting("", "Microphone: '' = default input, a PortAudio index, or a (sub)string of the device name.")
    sample_rate: int = setting(
        0, "Microphone capture rate in Hz (0 = the device's default); for the ros-drivers layout, "
           "the rate assumed until an AudioInfo arrives.")
    channels: int = setting(1, "Channels captured (downmixed to mono).")
    window_s: float = setting(
        0.0, "Analysis window in seconds; 0 = the model's clip length (5 s 2022, 7 s 2023, 10 s LAION).")
    hop_s: float = setting(0.5, "Seconds between windows: one inference and one message per hop.")
    frame_id: str = setting("microphone", "header.frame_id of the published messages.")
    publish_bools: bool = setting(True, "Also publish std_msgs/Bool on /audio_predicates/<name> for every predicate.")
    silence_timeout_s: float = setting(2.0, "Diagnostics warn when the audio topic has been silent this long.")
    retry_initial_s: float = setting(1.0, "First delay before reopening a failed microphone; doubles per failure.")
    retry_max_s: float = setting(30.0, "Longest delay between microphone retries.")
    buffer_s: float = setting(30.0, "Seconds of audio buffered between capture and inference; beyond that, overruns.")
    diagnostics_period_s: float = setting(1.0, "Period of /diagnostics messages.")
    record_dir: str = setting(
        "", "If set, record the audio heard, /audio_predicates and /diagnostics into an mcap bag here.")
    text_in_child_process: bool = setting(
        True, "Embed the prompts in a short-lived child process, so the node never loads the "
              "text encoder (≈ 100–200 MB less resident memory; a few seconds more per (re)load).")
    audio_runtime: str = setting(
        "auto", "'onnx': a child process exports the audio path once and the node runs it with ONNX "
                "Runtime, never importing torch (≈ 145–190 MB less memory, same results); 'torch': the model "
                "in this process; 'auto': onnx where the audio tower exports (the default model, CNN14), "
                "torch otherwise.")
    onnx_cache_dir: str = setting(
        "", "Keep the ONNX export (≈ 330 MB for CNN14, 20 MB for the default model) here, keyed by the "
            "weights' checksum, so later starts skip it (CNN14 10–20 s, default 4 s); '' = export into a "
            "temporary folder, removed once loaded.")
    compute_device: str = setting(
        "cpu", "Where the model runs: 'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when torch sees one). "
               "ONNX runtime: CUDA when onnxruntime has its CUDA provider, else the CPU (logged).")
    precision: str = setting(
        "fp32", "What audio inference computes in: 'fp32', or 'bf16' (CPU: AMX/AVX-512-BF16 where present; "
                "CNN14 ≈ 4× faster) or 'fp16' (for GPUs; slower than fp32 on CPUs without AMX-FP16). Only "
                "precisions measured to keep cosine ≥ 0.999 to fp32 and sounds45's zero-shot decisions are "
                "offered; not fp32: runs the audio path with torch (audio_runtime auto/torch).")

    def validate(self) -> "NodeSettings":
        """Reject nonsense once, at start, with the parameter's name in the message."""
        _check_choices(self)
        _check_ranges(self)
        for name in TOPICS:
            check_topic_name(name, getattr(self, name))
        check_config_readable(self.config)
        for name in ("record_dir", "onnx_cache_dir"):
            if getattr(self, name):
                check_dir_writable(name, getattr(self, name))
        return self


# Every parameter's description, read from its field (the launch file's arguments use the same).
DESCRIPTIONS: dict[str, str] = {f.name: f.metadata["description"] for f in fields(NodeSettings)}


def declare_settings(node: Any) -> NodeSettings:
    """Declare every NodeSettings field as a ROS parameter and read the values back, checked."""
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for f in fields(NodeSettings):
        desc = ParameterDescriptor(description=DESCRIPTIONS[f.name], read_only=f.name != "config",
                                   dynamic_typing=True)
        values[f.name] = coerce(f.name, type(f.default), node.declare_parameter(f.name, f.default, desc).value)
    return NodeSettings(**values).validate()


def coerce(name: str, kind: type, value: Any) -> Any:
    """`-p` passes 5 for 5.0 and the launch file passes text: accept what is unambiguous, name the rest."""
    if isinstance(value, str) and kind is not str:
        return _from_text(name, kind, value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise ConfigError(f"parameter '{name}': expected {_kind_name(kind)}, got {value!r}")


def _from_text(name: str, kind: type, text: str) -> Any:
    word = text.strip().lower()
    if kind is bool and word in TRUE + FALSE:
        return word in TRUE
    try:
        if kind is int:
            return int(word)
        if kind is float:
            return float(word)
    except ValueError:
        pass
    raise ConfigError(f"parameter '{name}': expected {_kind_name(kind)}, got {text!r}")


def _kind_name(kind: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]


def _check_choices(s: NodeSettings) -> None:
    if not s.config:
        raise ConfigError("parameter 'config': required, the path of a predicates YAML "
                          "(e.g. -p config:=config/predicates.yaml)")
    for name, choices in (("audio_runtime", RUNTIMES), ("source", SOURCES)):
        if getattr(s, name) not in choices:
            raise ConfigError(f"parameter '{name}': must be one of {', '.join(choices)}, got '{getattr(s, name)}'")
    try:
        parse_device(s.compute_device)
    except ConfigError:
        raise ConfigError(f"parameter 'compute_device': must be one of {DEVICE_CHOICES}, "
                          f"got '{s.compute_device}'") from None
    for name in ("weights", "frame_id"):
        if not getattr(s, name).strip():
            raise ConfigError(f"parameter '{name}': must not be empty")
    check_node_precision(s.precision)
    if s.precision != "fp32" and s.audio_runtime == "onnx":
        raise ConfigError(f"parameter 'precision': {s.precision} needs audio_runtime torch or auto "
                          "(the ONNX Runtime audio path runs fp32 only)")


def _check_ranges(s: NodeSettings) -> None:
    if s.window_s != 0.0 and not 0.5 <= s.window_s <= 30.0:
        raise ConfigError(f"parameter 'window_s': must be 0 (the model's clip length) or in [0.5, 30] "
                          f"seconds, got {s.window_s}")
    if not 0.0 < s.hop_s <= (s.window_s or 30.0):  # auto window: checked again once the model is loaded
        raise ConfigError(f"parameter 'hop_s': must be in (0, window_s={s.window_s or 30.0}], got {s.hop_s}")
    for name in POSITIVE:
        if not getattr(s, name) > 0:
            raise ConfigError(f"parameter '{name}': must be positive, got {getattr(s, name)}")
    if s.retry_max_s < s.retry_initial_s:
        raise ConfigError(f"parameter 'retry_max_s': must be at least retry_initial_s={s.retry_initial_s}, "
                          f"got {s.retry_max_s}")
    if s.window_s and s.buffer_s < 2 * s.window_s:
        raise ConfigError(f"parameter 'buffer_s': must be at least 2 * window_s, got {s.buffer_s}")
    if not 0 <= s.sample_rate <= 768_000:
        raise ConfigError(f"parameter 'sample_rate': must be 0 (device default) or a rate in Hz, got {s.sample_rate}")
    if not 1 <= s.channels <= 64:
        raise ConfigError(f"parameter 'channels': must be in [1, 64], got {s.channels}")


def check_topic_name(name: str, topic: str) -> None:
    """rclpy's own validator, so a bad name is refused now and not by create_subscription later."""
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.validate_topic_name import validate_topic_name

    try:
        validate_topic_name(topic)
    except InvalidTopicNameException as exc:
        reason = str(exc).split(":", 1)[-1].strip().splitlines()[0].rstrip(":")
        raise ConfigError(f"parameter '{name}': {topic!r} is not a valid ROS topic name ({reason})") from None


def check_config_readable(path: str) -> None:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"parameter 'config': {path} is not a file (give the path of a predicates YAML)")
    try:
        with p.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"parameter 'config': cannot read {path} ({exc.strerror or exc})") from None


def check_dir_writable(name: str, path: str) -> None:
    """Create the folder (the recorder would) and write a probe file: `os.access` lies for root."""
    p = Path(path).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".clap_probe_", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"parameter '{name}': cannot write to {path} ({exc.strerror or exc}); "
                          "give a writable folder or leave it empty") from None
