"""Fixtures for the ROS tests: a real rclpy client, model weights, and a PulseAudio virtual microphone."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from node_harness import RosClient


@pytest.fixture
def client():
    pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
    c = RosClient()
    yield c
    c.close()


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
             "-L", "module-null-sink sink_name=vsink rate=48000 channels=1",
             "-L", "module-remap-source master=vsink.monitor source_name=virtmic"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with {self.proc.returncode}")
            if self.pactl("set-default-source", "virtmic").returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("pulseaudio did not come up")

    def pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)

    def play(self, wav: Path) -> None:
        """Play a file into the null sink; returns when it has been played."""
        subprocess.run(["paplay", "--device=vsink", str(wav)], env=self.env, check=True, timeout=60)

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
