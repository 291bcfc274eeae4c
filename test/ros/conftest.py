"""Fixtures for the ROS tests: a real rclpy client, model weights, and a PulseAudio virtual microphone."""
from __future__ import annotations

import shutil

import pytest

from node_harness import PulseServer, RosClient


@pytest.fixture
def client():
    pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
    c = RosClient()
    yield c
    c.close()


@pytest.fixture
def pulse(tmp_path_factory):
    """A running virtual microphone, or a skip naming what is missing (setup.sh installs it as root)."""
    missing = [tool for tool in ("pulseaudio", "pactl", "paplay") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run scripts/setup.sh as root "
                    "(apt-get install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2)")
    runtime = tmp_path_factory.mktemp("pulse")
    runtime.chmod(0o700)
    server = PulseServer(runtime)
    try:
        server.start()
    except RuntimeError as exc:
        server.stop()
        pytest.skip(f"cannot start a private pulseaudio here: {exc}")
    yield server
    server.stop()
