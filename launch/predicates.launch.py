"""Launch the clap_ros predicate node: `ros2 launch clap_ros predicates.launch.py config:=my.yaml`.

Every node parameter is a launch argument of the same name and default (docs/node.md). They reach
the node as text: the node converts and checks them all before the model loads, so
`window_s:=abc` ends with one line naming `window_s` instead of a conversion error inside launch.
When the node exits, the launch ends; if it failed, `ros2 launch` exits non-zero.
"""
from dataclasses import fields

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from clap_ros.node_settings import DESCRIPTIONS, NodeSettings

NODE_NAME = "clap_predicate_node"


def launch_defaults() -> dict:
    """The node's own defaults as text; `config` defaults to the installed example file."""
    defaults = {f.name: str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
                for f in fields(NodeSettings)}
    defaults["config"] = PathJoinSubstitution([FindPackageShare("clap_ros"), "config", "predicates.yaml"])
    return defaults


def _raise_failed(returncode: int):
    def fail(context):
        # An exception here is what makes LaunchService.run() (and so `ros2 launch`) return 1.
        raise RuntimeError(f"{NODE_NAME} exited with code {returncode}: see its FATAL line above")
    return fail


def on_node_exit(event, context) -> list:
    """End the launch with the node; a failed node also fails the launch."""
    if event.returncode == 0:
        return [Shutdown(reason=f"{NODE_NAME} exited")]
    return [Shutdown(reason=f"{NODE_NAME} exited with code {event.returncode}"),
            OpaqueFunction(function=_raise_failed(event.returncode))]


def generate_launch_description() -> LaunchDescription:
    defaults = launch_defaults()
    declared = [DeclareLaunchArgument(name, default_value=default, description=DESCRIPTIONS[name])
                for name, default in defaults.items()]
    # As text, never guessed from YAML by launch: the node names a bad value (see node_settings.py).
    parameters = {name: ParameterValue(LaunchConfiguration(name), value_type=str) for name in defaults}
    node = Node(
        package="clap_ros",
        executable="clap-predicate-node",
        name=NODE_NAME,
        output="screen",
        emulate_tty=True,
        parameters=[parameters],
    )
    exit_handler = RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_node_exit))
    return LaunchDescription([*declared, node, exit_handler])
