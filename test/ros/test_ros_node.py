"""The node as a real process over real DDS: start-up errors, per-hop output, hot reload, bad audio,
silence, SIGTERM.

These tests check the node's plumbing, not what it hears, so they use the suite's tiny real model
(small CNN14 + 1-layer BERT, random weights, saved in the project's format) with a 1-s window: the
same code path as the default model, a fraction of the start-up time. Its scores are a constant
(≈ 0.0032) and its values all False, so the one test about what a value *does* (held through a
skipped window) runs its own node with the default model on a real recording.
"""
from __future__ import annotations

import math
import signal
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
pytest.importorskip("clap_ros_interfaces.msg", reason="interfaces are built by scripts/setup.sh")
pytest.importorskip("audio_common_msgs.msg", reason="interfaces are built by scripts/setup.sh")

from node_harness import (  # noqa: E402
    ROOT, NodeProcess, RosClient, Session, diagnostics_for, publish_audio, sensor_qos, status_values, wait_until_up,
)

RATE = 16000
WINDOW, HOP = 1.0, 0.5
GOOD_A = "predicates:\n  door_knock:\n    prompt: knocking on a door\n  glass_break:\n    prompt: glass breaking\n"
GOOD_B = "predicates:\n  kettle:\n    prompt: a kettle whistling\n    threshold: 0.4\n"
BAD = "predicates:\n  kettle:\n    prompt: a kettle whistling\n    threshold: 2.0\n"


def _write(path, text: str):
    path.write_text(text)
    return path


def _noise(seconds: float, seed: int, level: float = 0.05) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * level).astype(np.float32)


# -- start-up errors: one line naming the problem, exit code 2, no traceback -----------------------
def _htsat_config(folder: Path) -> Path:
    """A weights folder whose config names an HTS-AT tower, which has no ONNX export yet (the
    refusal comes from the config, before anything loads)."""
    import json

    config = json.loads((Path(__file__).parents[2] / "clap_core/weights/default/config.json").read_text())
    config["audio"]["kind"] = "htsat"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("params, expected", [
    ({"source": "topic"}, "parameter 'config'"),
    ({"config": "{bad}", "source": "topic"}, "predicates.kettle.threshold"),
    ({"config": "{good}", "source": "topic", "weights": "no_such_weights"}, "weights 'no_such_weights'"),
    ({"config": "{good}", "source": "topic", "hop_s": 9.0}, "parameter 'hop_s'"),
    ({"config": "{good}", "source": "topic", "audio_runtime": "tensorflow"}, "parameter 'audio_runtime'"),
    ({"config": "{good}", "source": "topic", "weights": "{htsat}", "audio_runtime": "onnx"},
     "not one that exports to ONNX"),
])
def test_start_up_errors_are_one_clear_line(tmp_path, params, expected) -> None:
    files = {"bad": _write(tmp_path / "bad.yaml", BAD), "good": _write(tmp_path / "good.yaml", GOOD_A),
             "htsat": _htsat_config(tmp_path / "htsat")}
    node = NodeProcess({k: str(v).format(**files) for k, v in params.items()})
    code = node.wait_exit(timeout=60)
    assert code == 2, node.output
    assert expected in node.output and "Traceback" not in node.output, node.output
    assert [line for line in node.lines if "cannot start" in line], node.output


def test_console_script_is_the_same_node() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "clap-predicate-node"
    if not script.exists():
        pytest.skip(f"{script} not installed: run scripts/setup.sh (pip install -e .)")
    run = subprocess.run([str(script), "--ros-args", "-p", "source:=topic"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "parameter 'config'" in run.stdout + run.stderr, run.stdout + run.stderr


# -- one running node for the rest of the module ---------------------------------------------------
@pytest.fixture(scope="module")
def session(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("node")
    files = {name: _write(tmp / f"{name}.yaml", text) for name, text in
             (("a", GOOD_A), ("b", GOOD_B), ("bad", BAD))}
    # window_s given as an int (`-p window_s:=1`), as users type it: the node accepts it as 1.0.
    node = NodeProcess({"config": files["a"], "weights": tiny_model_dir, "source": "topic",
                        "window_s": int(WINDOW), "hop_s": HOP, "silence_timeout_s": 1.0,
                        "diagnostics_period_s": 0.5, "frame_id": "test_mic"})
    client = RosClient()
    try:
        s = Session(node, client, files, RATE, HOP)
        wait_until_up(client, node, s.audio_pub)
        yield s
    finally:
        client.close()
        node.kill()


def test_one_message_per_hop_with_matching_bools(session: Session) -> None:
    from std_msgs.msg import Bool

    bools = session.client.collect(Bool, session.node.bool_topic("door_knock"))
    session.client.spin_until(
        lambda: session.client.node.count_publishers(session.node.bool_topic("door_knock")) > 0, 10, "Bool topic")
    t0 = session.t
    session.publish(_noise(3.0, seed=1))
    msgs = session.wait_windows(5)  # windows ending at t0 + 1.0, 1.5, ..., 3.0
    ends = [m.window_end.sec + m.window_end.nanosec * 1e-9 for m in msgs]
    np.testing.assert_allclose(ends, t0 + np.arange(1.0, 3.01, HOP), atol=1e-3)
    for m, end in zip(msgs, ends):
        assert m.header.stamp == m.window_end and m.header.frame_id == "test_mic"
        assert m.window_start.sec + m.window_start.nanosec * 1e-9 == pytest.approx(end - WINDOW, abs=1e-3)
        assert m.names == ["door_knock", "glass_break"] and len(m.scores) == len(m.values) == 2
        assert all(0.0 <= s <= 1.0 for s in m.scores) and list(m.flags) == []
    session.client.spin_until(lambda: len(bools) >= len(msgs), 10, "the Bools")
    assert [b.data for b in bools[:len(msgs)]] == [bool(m.values[0]) for m in msgs]


def test_cnn14_weights_run_without_torch_in_the_node(session: Session) -> None:
    """audio_runtime 'auto' with a CNN14 tower: ONNX Runtime in the node, torch only in its children."""
    maps = Path(f"/proc/{session.node.proc.pid}/maps").read_text()
    assert "onnxruntime" in maps
    assert "libtorch" not in maps and "transformers" not in maps


def test_hot_reload_good_then_bad(session: Session) -> None:
    ok, reason = session.set_config(session.files["b"])
    assert ok, reason
    session.publish(_noise(1.5, seed=2))
    msgs = session.wait_windows(3)
    assert msgs[-1].names == ["kettle"] and msgs[-1].thresholds[0] == pytest.approx(0.4)

    ok, reason = session.set_config(session.files["bad"])
    assert not ok and "predicates.kettle.threshold" in reason and "keeping the previous" in reason
    # the reply can come back over DDS before the node's log line has come through its pipe
    session.client.spin_until(lambda: any("config reload rejected" in line for line in session.node.lines), 10,
                              "the rejection in the node's log", session.node)
    session.publish(_noise(1.0, seed=3))
    msgs = session.wait_windows(2)
    assert all(m.names == ["kettle"] for m in msgs)  # the old (good) set stays live
    session.client.spin_until(lambda: any(
        "rejected" in status_values(s).get("last_reload", "")
        for s in diagnostics_for(session.diags, session.node, "inference")), 10, "diagnostics of the rejected reload")


def test_nonfinite_and_clipped_audio_are_flagged_not_fatal(session: Session) -> None:
    bad = _noise(1.0, seed=4)
    bad[100:200] = np.nan
    clipped = np.where(_noise(1.0, seed=5) > 0, 1.0, -1.0).astype(np.float32)
    session.publish(_noise(1.0, seed=6), fmt="float32")
    session.publish(bad, fmt="float32")
    session.publish(clipped, fmt="float32")
    session.publish(_noise(2.0, seed=7), fmt="float32")
    msgs = session.wait_windows(10)
    nonfinite = [i for i, m in enumerate(msgs) if "nonfinite" in m.flags]
    assert nonfinite and nonfinite[0] > 0
    for i in nonfinite:  # skipped: the debounced values hold their previous state
        assert "skipped" in msgs[i].flags and list(msgs[i].values) == list(msgs[i - 1].values)
    nonfinite = [msgs[i] for i in nonfinite]
    assert all(math.isnan(s) for m in nonfinite for s in m.scores)  # skipped: no score, not 0
    assert any("clipped" in m.flags for m in msgs)
    assert list(msgs[-1].flags) == [] and all(0.0 <= s <= 1.0 for s in msgs[-1].scores)
    assert session.node.alive()


def test_silent_topic_is_reported_in_diagnostics(session: Session) -> None:
    from diagnostic_msgs.msg import DiagnosticStatus

    def silent() -> bool:
        statuses = diagnostics_for(session.diags, session.node, "audio source")
        return bool(statuses) and statuses[-1].level == DiagnosticStatus.WARN and "no audio on" in statuses[-1].message

    session.client.spin_until(silent, 15, "a 'no audio' warning", session.node)
    last = diagnostics_for(session.diags, session.node, "audio source")[-1]
    assert status_values(last)["state"] == "silent"
    inference = status_values(diagnostics_for(session.diags, session.node, "inference")[-1])
    assert int(inference["windows"]) >= 20 and int(inference["windows_nonfinite"]) >= 1
    background = diagnostics_for(session.diags, session.node, "adaptive background")[-1]
    assert background.message == "off" and status_values(background)["learned"] == "False"


def test_sigterm_ends_the_node_with_exit_code_0(session: Session) -> None:
    assert session.node.stop(signal.SIGTERM) == 0, session.node.output


# -- what the node hears: the default model on a real recording ------------------------------------
SCENE1 = ROOT / "test" / "bags" / "data" / "scene1_stamped_mcap"  # water splashing from 1.0 to 5.1 s
PREDICATES = ROOT / "test" / "bags" / "predicates.yaml"
NAN_AT_S = 3.2  # inside the splash: skips the windows ending at 3.5 and 4.0 s (indices 5, 6)


def _scene_audio(seconds: float) -> np.ndarray:
    from clap_ros.bag_io import read_bag_audio

    _, chunks = read_bag_audio(SCENE1)
    audio = np.concatenate([c.samples for c in chunks]).astype(np.float32)
    return audio[:int(seconds * RATE)].copy()


def test_skipped_windows_hold_true_values(default_weights) -> None:
    """The tiny model's values are all False, so 'hold' and 'reset' look alike there. With the default
    model the splash turns water_splash True; a NaN inside it must keep it True, not reset it. And
    the default model's node never loads torch."""
    from audio_common_msgs.msg import AudioStamped
    from clap_ros_interfaces.msg import AudioPredicates

    audio = _scene_audio(6.0)
    audio[int(NAN_AT_S * RATE):int(NAN_AT_S * RATE) + 100] = np.nan
    node = NodeProcess({"config": PREDICATES, "weights": default_weights, "source": "topic",
                        "window_s": WINDOW, "hop_s": HOP})
    client = RosClient()
    try:
        preds = client.collect(AudioPredicates, node.preds_topic)
        pub = client.node.create_publisher(AudioStamped, node.audio_topic, sensor_qos())
        wait_until_up(client, node, pub)
        publish_audio(client, pub, audio, RATE, 1_000.0, speed=4.0, fmt="float32")
        client.spin_until(lambda: len(preds) >= 11, 60, "11 windows", node)  # ends 1.0, 1.5, ..., 6.0
        maps = Path(f"/proc/{node.proc.pid}/maps").read_text()
    finally:
        client.close()
        node.kill()
    splash = [m.names.index("water_splash") for m in preds][0]
    values = [bool(m.values[splash]) for m in preds]
    scored = np.array([m.scores[splash] for m in preds if "skipped" not in m.flags])
    skipped = [i for i, m in enumerate(preds) if "skipped" in m.flags]
    # audio_runtime auto with the default model: ONNX Runtime in the node, torch only in its children
    assert "onnxruntime" in maps and "libtorch" not in maps and "transformers" not in maps
    assert scored.std() > 0.1, scored  # measured 0.32 (scores 0.005–0.88); tiny model: 2e-8
    assert skipped == [5, 6], [list(m.flags) for m in preds]  # windows ending at 3.5 and 4.0 s
    # off before the splash starts (1.0 s), on during it; v2 keeps it on until 6.0 s (hysteresis), so
    # "off after it" is not asserted here: the scene ends 0.9 s after the splash
    assert not values[0] and values[4], values
    assert values[5] == values[6] == values[4], values  # held through the skipped windows
