"""The node's `precision` parameter as a real process over real DDS: bf16 starts and publishes,
what cannot run is refused at start with one FATAL line and exit code 2."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
pytest.importorskip("clap_ros_interfaces.msg", reason="interfaces are built by scripts/setup.sh")

from node_harness import NodeProcess, windows_from_noise  # noqa: E402

from clap_core.precision import NODE_REFUSED  # noqa: E402

PROMPTS = "predicates:\n  door_knock:\n    prompt: knocking on a door\n"


@pytest.fixture()
def config(tmp_path):
    path = tmp_path / "prompts.yaml"
    path.write_text(PROMPTS)
    return path


@pytest.mark.parametrize("model", ["tiny_model_dir", "default_weights"])
def test_node_runs_in_bf16(request, config, model) -> None:
    """bf16 on the CPU: the node starts, says so, and scores windows. With the tiny CNN14 model,
    whose fp32 runtime is ONNX Runtime ('auto'), bf16 must take the torch path."""
    weights = request.getfixturevalue(model)
    node = NodeProcess({"config": config, "weights": weights, "source": "topic", "window_s": 1.0, "hop_s": 0.5,
                        "precision": "bf16"})
    try:
        preds = windows_from_noise(node, 3.0, 2, up_timeout=180)
        maps = open(f"/proc/{node.proc.pid}/maps").read()
    finally:
        node.kill()
    assert "(precision bf16)" in node.output, node.output
    assert "libtorch" in maps  # the torch path, never the fp32-only ONNX Runtime export
    assert all(np.isfinite(s) and 0.0 <= s <= 1.0 for m in preds[:2] for s in m.scores)


REFUSED = [({"precision": "bf16", "audio_runtime": "onnx"}, "ONNX Runtime audio path runs fp32 only")]
REFUSED += [({"precision": name}, reason) for name, reason in NODE_REFUSED.items()]


@pytest.mark.parametrize("params, reason", REFUSED)
def test_refused_precision_is_one_fatal_line(config, params, reason) -> None:
    node = NodeProcess({"config": config, "weights": "default", "source": "topic", **params})
    assert node.wait_exit(timeout=60) == 2, node.output
    fatal = [line for line in node.lines if "cannot start" in line]
    assert len(fatal) == 1 and "FATAL" in fatal[0] and "parameter 'precision'" in fatal[0], node.output
    assert reason in fatal[0] and "Traceback" not in node.output, node.output
    assert "loading weights" not in node.output, node.output  # refused before the model
