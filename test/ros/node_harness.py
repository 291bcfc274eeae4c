"""Test harness: the predicate node as a real separate process, and a real rclpy client beside it.

Every run gets its own node name and topic names, so tests in one ROS domain do not hear each
other. Nothing here is mocked: messages cross real DDS (loopback), the node is `python -m
clap_ros.predicate_node` exactly as a user starts it.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
_COUNTER = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_COUNTER)}"


class NodeProcess:
    """`python -m clap_ros.predicate_node` with the given parameters; output collected by a thread."""

    def __init__(self, params: dict[str, Any], env: dict[str, str] | None = None,
                 command: list[str] | None = None, base_env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> None:
        """`command` replaces `python -m clap_ros.predicate_node` (e.g. an installed console script);
        `base_env` replaces this process's environment (e.g. a sourced colcon install space)."""
        self.name = unique("clap_node")
        self.ns = "/" + unique("t")  # its relative topics (audio, audio_predicates/...) live here
        self.preds_topic = f"{self.ns}/audio_predicates"
        self.audio_topic = f"{self.ns}/audio"
        args = [*(command or [sys.executable, "-m", "clap_ros.predicate_node"]), "--ros-args",
                "-r", f"__node:={self.name}", "-r", f"__ns:={self.ns}"]
        for key, value in params.items():
            args += ["-p", f"{key}:={value}"]
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**(os.environ if base_env is None else base_env), **(env or {})})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def bool_topic(self, predicate: str) -> str:
        return f"{self.preds_topic}/{predicate}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"node did not exit within {timeout} s; output:\n{self.output}") from None
        self._reader.join(timeout=5)
        return code

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.alive():
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)


class RosClient:
    """A real rclpy node in the test process, in its own context (independent of other tests)."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(unique("test_client"), context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def collect(self, msg_type: Any, topic: str, depth: int = 1000) -> list:
        got: list = []
        self.node.create_subscription(msg_type, topic, got.append, depth)
        return got

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(end - time.monotonic(), 0.0)))

    def spin_until(self, cond: Callable[[], bool], timeout: float, what: str, node: NodeProcess | None = None) -> None:
        """Spin until `cond()`; fail with `what` and the node's output otherwise."""
        end = time.monotonic() + timeout
        while not cond():
            if node is not None and not node.alive():
                raise AssertionError(f"node exited ({node.proc.returncode}) while waiting for {what}:\n{node.output}")
            if time.monotonic() > end:
                tail = f"\nnode output:\n{node.output}" if node is not None else ""
                raise AssertionError(f"timed out after {timeout} s waiting for {what}{tail}")
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def wait_until_up(client: RosClient, node: NodeProcess, audio_pub: Any = None, timeout: float = 90.0) -> None:
    """The node is up once its AudioPredicates publisher (and its subscription to `audio_pub`) is
    visible over DDS. Then a short pause: the publisher seeing the subscription does not mean the
    subscription has matched the publisher yet, and best-effort samples sent before that are lost."""
    client.spin_until(lambda: client.node.count_publishers(node.preds_topic) > 0, timeout,
                      f"node {node.name} to come up", node)
    if audio_pub is not None:
        client.spin_until(lambda: audio_pub.get_subscription_count() > 0, timeout, "the node's audio subscription", node)
    client.spin_for(1.5)


def diagnostics_for(arrays: list, node: NodeProcess, suffix: str) -> list:
    """This node's DiagnosticStatus entries named '<node>: <suffix>', oldest first."""
    name = f"{node.name}: {suffix}"
    return [s for a in arrays for s in a.status if s.name == name]


def status_values(status: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def audio_stamped(samples: np.ndarray, rate: int, t_first: float, fmt: str = "int16") -> Any:
    """An mgonzs13 AudioStamped holding mono samples (float in [-1, 1]) as int16 or float32."""
    from audio_common_msgs.msg import AudioStamped

    msg = AudioStamped()
    ns = int(round(t_first * 1e9))
    msg.header.stamp.sec, msg.header.stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
    msg.audio.info.channels, msg.audio.info.rate, msg.audio.info.chunk = 1, rate, len(samples)
    if fmt == "int16":
        msg.audio.info.format = 8
        msg.audio.audio_data.int16_data = np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)
    else:
        msg.audio.info.format = 1
        msg.audio.audio_data.float32_data = samples.astype(np.float32)
    return msg


def publish_audio(client: RosClient, publisher: Any, audio: np.ndarray, rate: int, t0: float,
                  chunk_s: float = 0.1, speed: float = 4.0, fmt: str = "int16") -> None:
    """Publish `audio` in chunks stamped from `t0`, `speed` times faster than real time."""
    n = int(round(chunk_s * rate))
    for i in range(0, len(audio), n):
        publisher.publish(audio_stamped(audio[i:i + n], rate, t0 + i / rate, fmt))
        client.spin_for(chunk_s / speed)


def sensor_qos() -> Any:
    from rclpy.qos import qos_profile_sensor_data

    return qos_profile_sensor_data


def windows_from_noise(node: NodeProcess, seconds: float, count: int, up_timeout: float = 240.0,
                       rate: int = 16000) -> list:
    """Publish `seconds` of seeded noise to a `source: topic` node (2× real time) and return its
    AudioPredicates once `count` have arrived; the caller ends the node."""
    from audio_common_msgs.msg import AudioStamped
    from clap_ros_interfaces.msg import AudioPredicates

    client = RosClient()
    try:
        preds = client.collect(AudioPredicates, node.preds_topic)
        pub = client.node.create_publisher(AudioStamped, node.audio_topic, sensor_qos())
        wait_until_up(client, node, pub, timeout=up_timeout)
        audio = (np.random.default_rng(0).standard_normal(int(seconds * rate)) * 0.05).astype(np.float32)
        publish_audio(client, pub, audio, rate, 1_000.0, speed=2.0)
        client.spin_until(lambda: len(preds) >= count, 120, f"{count} windows", node)
        return preds
    finally:
        client.close()
