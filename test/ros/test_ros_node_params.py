"""Every bad node parameter ends the real node process before the model loads: exit code 2, one
FATAL line naming the parameter, no traceback (the same values `ros2 launch ... name:=value` passes)."""
from __future__ import annotations

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
