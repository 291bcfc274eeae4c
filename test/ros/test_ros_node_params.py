"""Every bad node parameter ends the real node process before the model loads: exit code 2, one
FATAL line naming the parameter, no traceback (the same values `ros2 launch ... name:=value` passes)."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
pytest.importorskip("clap_ros_interfaces.msg", reason="interfaces are built by scripts/setup.sh")

from node_harness import NodeProcess  # noqa: E402

GOOD = "predicates:\n  kettle:\n    prompt: a kettle whistling\n"


@pytest.mark.parametrize("name, value", [
    ("window_s", "abc"),
    ("window_s", "60.0"),
    ("sample_rate", "1.5"),
    ("sample_rate", "-1"),
    ("channels", "0"),
    ("publish_bools", "maybe"),
    ("retry_max_s", "0.5"),
    ("audio_topic", "bad topic!"),
    ("audio_info_topic", "audio/1info"),
    ("record_dir", "/proc/nope"),
    ("config", "/no/such/predicates.yaml"),
    ("source", "radio"),
    ("compute_device", "gpu"),
    ("precision", "fp8"),
])
def test_bad_parameter_is_one_line_before_the_model_loads(tmp_path, name, value) -> None:
    config = tmp_path / "good.yaml"
    config.write_text(GOOD)
    params = {"config": str(config), "source": "topic", "weights": "default", name: value}
    node = NodeProcess(params)
    code = node.wait_exit(timeout=60)
    assert code == 2, node.output
    fatal = [line for line in node.lines if "cannot start" in line]
    assert len(fatal) == 1 and f"parameter '{name}'" in fatal[0], node.output
    assert "FATAL" in fatal[0] and "Traceback" not in node.output, node.output
    assert "loading weights" not in node.output, node.output  # refused before the model


CUDA_VISIBLE = pytest.importorskip("torch").cuda.is_available()


@pytest.mark.skipif(CUDA_VISIBLE, reason="torch sees a CUDA device here, so compute_device:=cuda must start")
def test_cuda_without_a_gpu_is_one_line_naming_compute_device(tmp_path) -> None:
    config = tmp_path / "good.yaml"
    config.write_text(GOOD)
    node = NodeProcess({"config": str(config), "source": "topic", "weights": "default", "compute_device": "cuda"})
    assert node.wait_exit(timeout=120) == 2, node.output
    fatal = [line for line in node.lines if "cannot start" in line]
    assert len(fatal) == 1 and "compute_device='cuda'" in fatal[0] and "no CUDA device" in fatal[0], node.output
    assert "Traceback" not in node.output, node.output


def test_node_starts_with_compute_device_cpu(tmp_path) -> None:
    """The default model on the CPU, said in the log; the node then runs until stopped."""
    config = tmp_path / "good.yaml"
    config.write_text(GOOD)
    node = NodeProcess({"config": str(config), "source": "topic", "weights": "default", "compute_device": "cpu"})
    try:
        start = time.monotonic()
        while time.monotonic() - start < 180.0 and node.alive() and "predicates (kettle)" not in node.output:
            time.sleep(0.5)
        assert node.alive() and "runs on onnx, cpu" in node.output, node.output
    finally:
        assert node.stop() == 0, node.output
