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
        self._reader.join(timeout=30)  # all its output, a traceback included, even on a loaded machine
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


class Session:
    """The running node, a client, the audio publisher, and the next audio time to publish."""

    def __init__(self, node: NodeProcess, client: RosClient, files: dict, rate: int = 16000, hop: float = 0.5) -> None:
        from audio_common_msgs.msg import AudioStamped
        from clap_ros_interfaces.msg import AudioPredicates
        from diagnostic_msgs.msg import DiagnosticArray

        self.node, self.client, self.files, self.rate, self.hop = node, client, files, rate, hop
        self.preds = client.collect(AudioPredicates, node.preds_topic)
        self.diags = client.collect(DiagnosticArray, "/diagnostics")
        self.audio_pub = client.node.create_publisher(AudioStamped, node.audio_topic, sensor_qos())
        self.t = 1_000.0
        self.taken = 0

    def publish(self, audio: np.ndarray, fmt: str = "int16") -> None:
        publish_audio(self.client, self.audio_pub, audio, self.rate, self.t, speed=5.0, fmt=fmt)
        self.t += len(audio) / self.rate

    def wait_windows(self, n: int, timeout: float = 30.0) -> list:
        """The next `n` AudioPredicates messages not yet taken by a test (waits for them)."""
        start = self.taken
        self.client.spin_until(lambda: len(self.preds) >= start + n, timeout, f"{n} windows", self.node)
        self.client.spin_for(3 * self.hop)  # and no more than n: nothing else is in flight
        self.taken = len(self.preds)
        return self.preds[start:]

    def set_config(self, path) -> tuple[bool, str]:
        """Call the node's SetParameters service, as `ros2 param set` would."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        cli = self.client.node.create_client(SetParameters, f"{self.node.ns}/{self.node.name}/set_parameters")
        self.client.spin_until(lambda: cli.service_is_ready(), 30, "the set_parameters service", self.node)
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(path))
        future = cli.call_async(SetParameters.Request(parameters=[Parameter(name="config", value=value)]))
        self.client.spin_until(future.done, 60, "the set_parameters reply", self.node)
        result = future.result().results[0]
        self.client.node.destroy_client(cli)
        return result.successful, result.reason


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


class PulseServer:
    """A private PulseAudio daemon with a null sink `vsink` whose monitor is the source `virtmic`.

    Sound played into vsink (paplay --device=vsink) is what a PortAudio client records from the
    ALSA `pulse` device. Started and stopped by PID; `kill()` + `start()` simulate a device that
    disappears and comes back.
    """

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir), "HOME": str(runtime_dir)}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
             "--use-pid-file=no", "-L", "module-native-protocol-unix auth-anonymous=1",
             *[arg for name, args in self.MODULES for arg in ("-L", f"{name} {args}")]],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with {self.proc.returncode}")
            if self.pactl("set-default-source", "virtmic").returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("pulseaudio did not come up")

    MODULES = (("module-null-sink", "sink_name=vsink rate=48000 channels=1"),
               ("module-remap-source", "master=vsink.monitor source_name=virtmic"))

    def unload_mic(self) -> None:
        """The virtual microphone's source (and the sink it monitors) goes away; the daemon stays."""
        for name, _ in reversed(self.MODULES):
            done = self.pactl("unload-module", name)
            assert done.returncode == 0, done.stderr

    def load_mic(self) -> None:
        """The source comes back (new module instances, as after a USB re-plug)."""
        for name, args in self.MODULES:
            done = self.pactl("load-module", name, *args.split())
            assert done.returncode == 0, done.stderr
        self.pactl("set-default-source", "virtmic")

    def pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)

    def play(self, wav: Path, timeout: float = 60.0) -> None:
        """Play a file into the null sink; returns when it has been played."""
        subprocess.run(["paplay", "--device=vsink", str(wav)], env=self.env, check=True, timeout=timeout)

    def kill(self) -> None:
        """The device vanishes: the daemon dies without a goodbye (SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
