"""The node's black-box recorder under faults, with a real node process and audio over real DDS.

A disk that fills up (a small tmpfs) and one that turns read-only mid-recording (ext4 in its error
state, see test/fs_faults.py): the node keeps publishing every window, diagnostics say the recorder
stopped and why, and the bag holds the audio up to the fault. A node killed with SIGKILL: the
bag it leaves has no metadata.yaml and no MCAP footer, yet `clap-predicates replay` reads it up to
the last complete chunk (the recorder closes one every second). The tiny real model (1-s window)
keeps start-up short; what it scores does not matter here, only what is recorded.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
pytest.importorskip("clap_ros_interfaces.msg", reason="interfaces are built by scripts/setup.sh")
pytest.importorskip("audio_common_msgs.msg", reason="interfaces are built by scripts/setup.sh")

from fs_faults import failing_ext4, fill_up, small_tmpfs  # noqa: E402
from node_harness import (  # noqa: E402
    ROOT, NodeProcess, RosClient, diagnostics_for, publish_audio, sensor_qos, wait_until_up,
)

RATE = 16000
WINDOW, HOP = 1.0, 0.5
PROMPTS = "predicates:\n  door_knock:\n    prompt: knocking on a door\n"
T0 = 2_000.0


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 0.1).clip(-1, 1).astype(np.float32)


def _as_sent(x: np.ndarray) -> np.ndarray:
    """What crosses DDS: node_harness.audio_stamped's int16, read back as the node does (/32768)."""
    return (np.clip(np.round(x * 32767), -32768, 32767) / 32768.0).astype(np.float32)


def _windows(seconds: float) -> int:
    return int(round((seconds - WINDOW) / HOP)) + 1


class Run:
    """A node recording into `record_dir`, a client collecting its output, an audio publisher."""

    def __init__(self, tmp_path: Path, weights: Path, record_dir: Path) -> None:
        from audio_common_msgs.msg import AudioStamped
        from clap_ros_interfaces.msg import AudioPredicates
        from diagnostic_msgs.msg import DiagnosticArray

        config = tmp_path / "prompts.yaml"
        config.write_text(PROMPTS)
        self.config, self.weights = config, weights
        self.node = NodeProcess({"config": config, "weights": weights, "source": "topic", "window_s": WINDOW,
                                 "hop_s": HOP, "diagnostics_period_s": 0.5, "record_dir": record_dir})
        self.client = RosClient()
        self.preds = self.client.collect(AudioPredicates, self.node.preds_topic)
        self.diags = self.client.collect(DiagnosticArray, "/diagnostics")
        self.pub = self.client.node.create_publisher(AudioStamped, self.node.audio_topic, sensor_qos())
        self.t = T0
        wait_until_up(self.client, self.node, self.pub)

    def publish(self, x: np.ndarray) -> None:
        publish_audio(self.client, self.pub, x, RATE, self.t, speed=4.0)
        self.t += len(x) / RATE

    def recorder_statuses(self) -> list:
        return diagnostics_for(self.diags, self.node, "recorder")

    def wait_windows(self, n: int) -> None:
        self.client.spin_until(lambda: len(self.preds) >= n, 60, f"{n} windows", self.node)

    def bag(self, record_dir: Path) -> Path:
        (bag,) = [p for p in record_dir.iterdir() if p.name.startswith("clap_")]
        return bag

    def close(self) -> None:
        self.client.close()
        self.node.kill()


@contextmanager
def _run(tmp_path: Path, weights: Path, record_dir: Path) -> Iterator[Run]:
    run = Run(tmp_path, weights, record_dir)
    try:
        yield run
    finally:
        run.close()


def _recorded_audio(bag: Path) -> np.ndarray:
    from clap_ros.bag_io import read_bag_audio

    _, chunks = read_bag_audio(bag)
    return np.concatenate([c.samples for c in chunks])


@contextmanager
def _fault_fs(kind: str, tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """(record_dir, the callable that brings on the fault mid-recording)."""
    if kind == "disk full":
        with small_tmpfs(tmp_path / "small", size_kb=1024) as disk:
            yield disk, lambda: fill_up(disk)
    else:
        with failing_ext4(tmp_path / "ext4", tmp_path / "ext4.img") as fs:
            yield fs.point, fs.fail


@pytest.mark.slow
@pytest.mark.parametrize("kind, reason", [("disk full", "No space left on device (ENOSPC)"),
                                          ("read-only", "Read-only file system (EROFS)")])
def test_recorder_fault_keeps_the_node_publishing(tmp_path, tiny_model_dir, kind, reason) -> None:
    x = _audio(8.0)
    with _fault_fs(kind, tmp_path) as (record_dir, fault), _run(tmp_path, tiny_model_dir, record_dir) as run:
        run.publish(x[:3 * RATE])
        run.wait_windows(_windows(3.0))
        run.client.spin_for(1.5)  # a diagnostics write flushes the last chunk before the fault
        fault()
        run.publish(x[3 * RATE:])
        run.wait_windows(_windows(8.0))  # every window, also after the recorder stopped
        run.client.spin_until(lambda: any(s.level == b"\x02" for s in run.recorder_statuses()), 10,
                              "the recorder's ERROR status", run.node)
        run.client.spin_for(1.0)
        assert len(run.preds) == _windows(8.0)
        assert run.recorder_statuses()[0].level == b"\x00", "OK while recording"
        last = run.recorder_statuses()[-1]
        assert last.level == b"\x02" and reason in last.message, last.message
        assert run.node.stop(signal.SIGINT) == 0, run.node.output
        assert sum("the node goes on without recording" in line for line in run.node.lines) == 1, run.node.output
        assert "Traceback" not in run.node.output, run.node.output
        y = _recorded_audio(run.bag(record_dir))  # a prefix of what was sent: all flushed before the fault
        assert 2 * RATE <= len(y) < len(x) and np.array_equal(y, _as_sent(x[:len(y)]))


@pytest.mark.slow
def test_sigkill_leaves_a_bag_that_replay_reads(tmp_path, tiny_model_dir) -> None:
    x = _audio(5.0, seed=1)
    with _run(tmp_path, tiny_model_dir, tmp_path / "rec") as run:
        run.publish(x)
        run.wait_windows(_windows(5.0))
        run.client.spin_for(2.0)  # two diagnostics messages later, the chunk holding the audio is flushed
        got = list(run.preds)
        run.node.proc.send_signal(signal.SIGKILL)
        assert run.node.wait_exit(10) == -signal.SIGKILL
        bag = run.bag(tmp_path / "rec")
    assert not (bag / "metadata.yaml").exists()  # as the kill left it: no clean close happened
    assert np.array_equal(_recorded_audio(bag), _as_sent(x))  # every sample the node heard

    done = subprocess.run([sys.executable, "-m", "clap_ros.predicates_cli", "replay", str(bag), "--config",
                           str(run.config), "--weights", str(tiny_model_dir), "--window", str(WINDOW), "--hop",
                           str(HOP), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "never closed" in done.stderr and "Traceback" not in done.stderr, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == len(got) == _windows(5.0)
    ends = [m.window_end.sec + m.window_end.nanosec * 1e-9 - T0 for m in got]
    assert [r["t_end"] for r in lines] == pytest.approx(ends, abs=1e-4)
    assert [r["predicates"]["door_knock"]["value"] for r in lines] == [bool(m.values[0]) for m in got]
    _assert_predicates_recorded(bag, len(got))


def _assert_predicates_recorded(bag: Path, n: int) -> None:
    """The node's own /audio_predicates messages are in the recovered part of the bag too."""
    from clap_ros.bag_io import _open_reader

    reader = _open_reader(bag)
    try:
        (conn,) = [c for c in reader.connections if c.topic == "/audio_predicates"]
        assert conn.msgtype == "clap_ros_interfaces/msg/AudioPredicates" and conn.msgcount == n
        msgs = [reader.deserialize(raw, conn.msgtype) for _, _, raw in reader.messages(connections=[conn])]
        assert [list(m.names) for m in msgs] == [["door_knock"]] * n
    finally:
        reader.close()
