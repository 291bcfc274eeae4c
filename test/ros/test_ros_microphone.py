"""The microphone path through a real (virtual) sound device: PulseAudio null sink → PortAudio → node.

A private PulseAudio daemon (fixture `pulse`, stopped by PID) provides the ALSA `pulse` device; sound
played into its null sink with `paplay` is what the node records. Killing the daemon makes the
device vanish under a running stream; starting it again brings it back.
"""
from __future__ import annotations

import signal
import threading
import time

import pytest

pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
pytest.importorskip("clap_ros_interfaces.msg", reason="interfaces are built by scripts/setup.sh")
pytest.importorskip("sounddevice", reason="sounddevice is in requirements.txt")

from node_harness import NodeProcess, diagnostics_for, status_values, wait_until_up  # noqa: E402

CONFIG = """predicates:
  water_splash:
    prompt: "water splashing"
  vacuum_on:
    prompt: "a vacuum cleaner running"
"""


def _stamp(t) -> float:
    return t.sec + t.nanosec * 1e-9


def _start(tmp_path, pulse, weights, **params) -> NodeProcess:
    config = tmp_path / "mic.yaml"
    config.write_text(CONFIG)
    return NodeProcess({"config": config, "weights": weights, "source": "microphone", "device": "pulse",
                        "diagnostics_period_s": 0.5, **params},
                       env={"XDG_RUNTIME_DIR": str(pulse.runtime_dir)})


def _source_state(diags, node) -> str:
    statuses = diagnostics_for(diags, node, "audio source")
    return status_values(statuses[-1])["state"] if statuses else ""


@pytest.mark.slow
def test_sound_played_into_the_virtual_mic_sets_the_predicate(tmp_path, client, pulse, sounds45,
                                                              default_weights) -> None:
    from clap_ros_interfaces.msg import AudioPredicates
    from diagnostic_msgs.msg import DiagnosticArray

    node = _start(tmp_path, pulse, default_weights, hop_s=0.5)
    try:
        preds = client.collect(AudioPredicates, node.preds_topic)
        diags = client.collect(DiagnosticArray, "/diagnostics")
        wait_until_up(client, node)
        client.spin_until(lambda: _source_state(diags, node) == "running", 30, "the microphone to capture", node)
        client.spin_until(lambda: len(preds) >= 2, 30, "windows of silence", node)
        played_at = time.time()
        player = threading.Thread(target=pulse.play, args=(sounds45 / "WaterSplash" / "WaterSplashing02.flac",))
        player.start()
        client.spin_until(lambda: not player.is_alive() and preds and _stamp(preds[-1].window_end) > time.time() - 0.3
                          and time.time() > played_at + 6.0, 60, "the splash to be played and heard", node)
    finally:
        code = node.stop(signal.SIGINT)
    assert code == 0, node.output
    idx = preds[0].names.index("water_splash")
    before = [m for m in preds if _stamp(m.window_end) < played_at]
    during = [m for m in preds if _stamp(m.window_end) > played_at + 2.0]
    assert before and not any(m.values[idx] for m in before), "splash heard before it was played"
    assert any(m.values[idx] for m in during), [round(m.scores[idx], 2) for m in during]
    assert max(m.level_dbfs for m in during) > max(m.level_dbfs for m in before) + 20


@pytest.mark.slow
def test_vanishing_microphone_is_reported_retried_and_resumed(tmp_path, client, pulse, tiny_model_dir) -> None:
    from clap_ros_interfaces.msg import AudioPredicates
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    node = _start(tmp_path, pulse, tiny_model_dir, window_s=1.0, hop_s=0.5, retry_initial_s=0.5, retry_max_s=2.0)
    try:
        preds = client.collect(AudioPredicates, node.preds_topic)
        diags = client.collect(DiagnosticArray, "/diagnostics")
        wait_until_up(client, node)
        client.spin_until(lambda: len(preds) >= 2, 40, "windows from the microphone", node)

        pulse.kill()
        client.spin_until(lambda: _source_state(diags, node) == "error", 20, "an error in diagnostics", node)
        error = diagnostics_for(diags, node, "audio source")[-1]
        assert error.level == DiagnosticStatus.ERROR and "microphone 'pulse'" in error.message
        assert "retrying in" in error.message
        client.spin_until(lambda: int(status_values(diagnostics_for(diags, node, "audio source")[-1])["retries"]) >= 2,
                          20, "retries while the device is gone", node)
        assert any("ERROR" in line and "microphone 'pulse'" in line for line in node.lines), node.output

        pulse.start()
        back_at = time.time()
        client.spin_until(lambda: _source_state(diags, node) == "running", 40, "the microphone to come back", node)
        assert "resumed" in diagnostics_for(diags, node, "audio source")[-1].message
        client.spin_until(lambda: _stamp(preds[-1].window_end) > back_at, 30, "windows after the device returned", node)
        assert node.alive()
    finally:
        code = node.stop(signal.SIGINT)
    assert code == 0, node.output


def test_missing_microphone_is_an_error_in_diagnostics_and_retried(tmp_path, client, tiny_model_dir) -> None:
    """No such device (no PulseAudio needed): the node stays up, says why, and keeps retrying."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    config = tmp_path / "mic.yaml"
    config.write_text(CONFIG)
    node = NodeProcess({"config": config, "weights": tiny_model_dir, "source": "microphone",
                        "device": "no_such_microphone_xyz", "retry_initial_s": 0.2, "retry_max_s": 0.5,
                        "diagnostics_period_s": 0.5})
    try:
        diags = client.collect(DiagnosticArray, "/diagnostics")
        wait_until_up(client, node)
        client.spin_until(lambda: diagnostics_for(diags, node, "audio source") and int(status_values(
            diagnostics_for(diags, node, "audio source")[-1])["retries"]) >= 3, 30, "three retries", node)
        status = diagnostics_for(diags, node, "audio source")[-1]
        assert status.level == DiagnosticStatus.ERROR
        assert "cannot open microphone 'no_such_microphone_xyz'" in status.message and "retrying in" in status.message
        assert any("ERROR" in line and "no_such_microphone_xyz" in line for line in node.lines), node.output
    finally:
        code = node.stop(signal.SIGINT)
    assert code == 0, node.output


def _tone(path, seconds: float = 2.0, amplitude: float = 0.1, rate: int = 48000):
    """A 1-kHz sine: RMS amplitude/√2, i.e. −23.0 dBFS at 0.1."""
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (amplitude * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), rate, subtype="FLOAT")
    return path


@pytest.mark.slow
def test_source_unloaded_and_reloaded_twice(tmp_path, client, pulse, tiny_model_dir) -> None:
    """The virtual microphone's PulseAudio source is unloaded and loaded again, twice, while the node
    records: each time diagnostics turn ERROR naming the microphone, it retries, says 'resumed', and
    the windows after the recovery follow the wall clock on a new hop grid (first one flagged 'gap')
    and hear what is played then (a −23 dBFS tone reads −23 ± 3 dB)."""
    import numpy as np
    from clap_ros_interfaces.msg import AudioPredicates
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    tone = _tone(tmp_path / "tone.wav")
    node = _start(tmp_path, pulse, tiny_model_dir, window_s=1.0, hop_s=0.5, retry_initial_s=0.5, retry_max_s=1.0)
    try:
        preds = client.collect(AudioPredicates, node.preds_topic)
        diags = client.collect(DiagnosticArray, "/diagnostics")
        wait_until_up(client, node)
        client.spin_until(lambda: _source_state(diags, node) == "running" and len(preds) >= 2, 40,
                          "windows from the microphone", node)
        for cycle in range(2):
            pulse.unload_mic()
            client.spin_until(lambda: _source_state(diags, node) == "error", 20, "an error in diagnostics", node)
            error = diagnostics_for(diags, node, "audio source")[-1]
            assert error.level == DiagnosticStatus.ERROR and "microphone 'pulse'" in error.message, error.message
            retries = int(status_values(error)["retries"])
            pulse.load_mic()
            back_at = time.time()
            client.spin_until(lambda: _source_state(diags, node) == "running", 40, "the microphone to return", node)
            status = diagnostics_for(diags, node, "audio source")[-1]
            assert "resumed" in status.message and int(status_values(status)["retries"]) >= retries >= cycle + 1
            n_before = len(preds)
            played_at = time.time()
            pulse.play(tone)
            client.spin_until(lambda: _stamp(preds[-1].window_end) > played_at + 3.0, 30, "windows after the tone", node)
            after = [m for m in preds[n_before:] if _stamp(m.window_end) > back_at]
            ends = np.array([_stamp(m.window_end) for m in after])
            assert np.allclose(np.diff(ends), 0.5, atol=1e-3), np.diff(ends)  # one run, nothing lost
            heard = [m.level_dbfs for m in after if played_at + 1.0 < _stamp(m.window_end) < played_at + 2.0]
            assert heard and max(heard) == pytest.approx(-23.0, abs=3.0), [round(m.level_dbfs, 1) for m in after]
        resumed = [m for m in preds if "gap" in m.flags]
        assert len(resumed) >= 2, [list(m.flags) for m in preds]
        ends = np.array([_stamp(m.window_end) for m in preds])
        assert np.all(np.diff(ends) > 0.4), "windows overlap or repeat across a restart"
        assert abs(ends[-1] - time.time()) < 3.0  # audio time is the wall clock, after two restarts
    finally:
        code = node.stop(signal.SIGINT)
    assert code == 0, node.output
