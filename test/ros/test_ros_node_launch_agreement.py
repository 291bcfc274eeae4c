"""The running node's parameters are exactly the launch file's arguments (issue #11 item 5).

Both come from the `NodeSettings` fields (clap_ros/node_settings.py): the node declares them and the
launch file makes its arguments from them. This asks the real node process, over DDS, what it
declared (as `ros2 param list` / `ros2 param describe` do) and compares with what the launch file
declares (run with recording stand-ins, see launch_stubs.py); test_ros_launch.py checks the defaults.
"""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")
pytest.importorskip("clap_ros_interfaces.msg", reason="interfaces are built by scripts/setup.sh")

from launch_stubs import launch_arguments, launch_description  # noqa: E402
from node_harness import NodeProcess, RosClient, wait_until_up  # noqa: E402

GOOD = "predicates:\n  kettle:\n    prompt: a kettle whistling\n"


def _call(client: RosClient, node: NodeProcess, srv_type, service: str, request):
    cli = client.node.create_client(srv_type, f"{node.ns}/{node.name}/{service}")
    client.spin_until(cli.service_is_ready, 30, f"the node's {service} service", node)
    future = cli.call_async(request)
    client.spin_until(future.done, 60, f"the {service} reply", node)
    client.node.destroy_client(cli)
    return future.result()


def test_running_node_parameters_are_the_launch_arguments(tmp_path, monkeypatch, tiny_model_dir) -> None:
    """Asked over its parameter services (as `ros2 param describe` asks), the real node declares
    the launch file's arguments and no others, each with the launch argument's description; only
    `config` can be set at run time. (Defaults: test_ros_launch.py.)"""
    from rcl_interfaces.srv import DescribeParameters, ListParameters

    arguments = launch_arguments(launch_description(monkeypatch))
    config = tmp_path / "good.yaml"
    config.write_text(GOOD)
    node = NodeProcess({"config": str(config), "weights": tiny_model_dir, "source": "topic",
                        "window_s": 1.0, "hop_s": 0.5})
    client = RosClient()
    try:
        own = set(client.node.list_parameters([], 0).names)  # what rclpy declares on every node
        wait_until_up(client, node)  # its services answer once the model has loaded and it spins
        names = set(_call(client, node, ListParameters, "list_parameters", ListParameters.Request()).result.names)
        assert own and own <= names, (own, names)
        assert names - own == set(arguments)
        ordered = sorted(arguments)
        described = _call(client, node, DescribeParameters, "describe_parameters",
                          DescribeParameters.Request(names=ordered)).descriptors
        for name, descriptor in zip(ordered, described, strict=True):
            assert descriptor.name == name
            assert descriptor.description == arguments[name]["description"], name
            assert descriptor.read_only == (name != "config"), name
    finally:
        client.close()
        node.kill()
