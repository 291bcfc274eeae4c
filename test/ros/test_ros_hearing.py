"""The node hears the right thing: real sounds45 recordings over real DDS, with the default model.

Two processes on loopback: this test publishes AudioStamped (44.1 kHz int16, stamped, 4x real time)
— quiet room noise, a vacuum cleaner, noise, water splashing, noise — and subscribes to
/audio_predicates and a Bool topic; the node runs as `python -m clap_ros.predicate_node`. Each
predicate must be true while its clip fills the window, false while the other clip plays, and false
in windows of background noise only. SIGINT then ends the node with exit code 0.

Both clips are training recordings of the default model, and both prompts are worded like their
classes' training captions ("vacuum", "water splashing"), so its trained text head speaks for them
(gate 1.0, `projection.TextGate`). Worded otherwise ("a vacuum cleaner running": gate 0.0) the
untrained label space alone scores them, and YAMNet hears these vacuum recordings as an engine or
a motor (measured 2026-12-04: the prompt ranks below "an engine running" and "a motor whirring"
in every window): the model card's "what it cannot hear".
"""
from __future__ import annotations

import signal

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
pytest.importorskip("clap_ros_interfaces.msg", reason="interfaces are built by scripts/setup.sh")
pytest.importorskip("audio_common_msgs.msg", reason="interfaces are built by scripts/setup.sh")

from node_harness import NodeProcess, publish_audio, sensor_qos, wait_until_up  # noqa: E402

RATE = 44100
GAP_S = 6.0
CONFIG = """predicates:
  vacuum_on:
    prompt: "vacuum"
  water_splash:
    prompt: "water splashing"
"""
CLIPS = (("vacuum_on", "Vacuum/Vacuum01.flac"), ("water_splash", "WaterSplash/WaterSplashing02.flac"))


def _scene(sounds45) -> tuple[np.ndarray, list[tuple[str | None, float, float]]]:
    """noise | clip | noise | clip | noise, and the (predicate or None, start, end) spans."""
    from clap_core.audio_io import load_audio, resample

    rng = np.random.default_rng(0)
    parts: list[tuple[str | None, np.ndarray]] = []

    def noise() -> np.ndarray:
        """Room-like noise at -70 dBFS, most energy low, as in the other real-model tests: bright white
        hiss, normalised up to -20 dBFS before YAMNet, reads as water to default model v2 (model card)."""
        from scipy.signal import lfilter

        x = lfilter([1.0], [1.0, -0.99], rng.standard_normal(int(GAP_S * RATE)))
        return (x / np.sqrt(np.mean(x ** 2)) * 10 ** (-70 / 20)).astype(np.float32)

    parts.append((None, noise()))
    for name, rel in CLIPS:
        wave, sr = load_audio(sounds45 / rel)
        parts += [(name, resample(wave, sr, RATE)), (None, noise())]
    spans, t = [], 0.0
    for name, wave in parts:
        spans.append((name, t, t + len(wave) / RATE))
        t += len(wave) / RATE
    return np.concatenate([w for _, w in parts]), spans


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


@pytest.mark.slow
def test_predicates_follow_real_recordings_over_dds(tmp_path, client, sounds45, default_weights) -> None:
    from audio_common_msgs.msg import AudioStamped
    from clap_ros_interfaces.msg import AudioPredicates
    from std_msgs.msg import Bool

    config = tmp_path / "hear.yaml"
    config.write_text(CONFIG)
    node = NodeProcess({"config": config, "weights": default_weights, "source": "topic", "hop_s": 0.5})
    try:
        preds = client.collect(AudioPredicates, node.preds_topic)
        splashes = client.collect(Bool, node.bool_topic("water_splash"))
        pub = client.node.create_publisher(AudioStamped, node.audio_topic, sensor_qos())
        wait_until_up(client, node, pub)
        client.spin_until(lambda: client.node.count_publishers(node.bool_topic("water_splash")) > 0, 10, "Bool topic")

        audio, spans = _scene(sounds45)
        t0 = 1_700_000_000.0
        publish_audio(client, pub, audio, RATE, t0, chunk_s=0.1, speed=4.0)
        # Resampling to the model's rate holds back a few ms, so the very last hop may not complete.
        expected = int((len(audio) / RATE - 0.05 - 5.0) / 0.5) + 1
        client.spin_until(lambda: len(preds) >= expected, 60, f"{expected} windows", node)
        client.spin_for(1.0)
    finally:
        code = node.stop(signal.SIGINT)
    assert code == 0, node.output
    assert expected <= len(preds) <= expected + 1, f"{len(preds)} windows for {expected} hops"

    checked, heard_true = {"noise": 0}, {}
    for msg in preds:
        end = msg.window_end.sec + msg.window_end.nanosec * 1e-9 - t0
        start = end - 5.0
        value = dict(zip(msg.names, msg.values))
        heard = {name: _overlap(start, end, a, b) for name, a, b in spans if name}
        if not any(heard.values()):  # background noise only
            assert not any(value.values()), f"noise window {start:.1f}-{end:.1f} s: {value}"
            checked["noise"] += 1
        for name, seconds in heard.items():
            other = next(n for n in value if n != name)
            clip_len = next(b - a for n, a, b in spans if n == name)
            if seconds >= min(4.5, clip_len - 0.2):  # the clip fills (most of) this window
                checked[name] = checked.get(name, 0) + 1
                heard_true[name] = heard_true.get(name, 0) + int(value[name])
                assert not value[other], f"{other} true during {name} at {start:.1f}-{end:.1f} s"
    assert checked["noise"] >= 5 and checked.get("vacuum_on", 0) >= 3 and checked.get("water_splash", 0) >= 1, checked
    # Default model v3, prompt and contrasts in one head mix (2026-12-04): water_splash true in both
    # windows the splash fills (0.94-1.00); vacuum_on in 7 of the 8 windows the vacuum fills (0.89 at
    # best, 0.44-0.45 at its end); v2 with "a vacuum cleaner running" held 3 of 6.
    assert heard_true.get("water_splash") == checked["water_splash"], (heard_true, checked)
    assert heard_true.get("vacuum_on", 0) >= 6, (heard_true, checked)
    idx = preds[0].names.index("water_splash")
    assert [b.data for b in splashes] == [bool(m.values[idx]) for m in preds]  # the Bool says the same
