"""Launch the clap_ros predicate node: `ros2 launch clap_ros predicates.launch.py config:=my.yaml`.

Every launch argument is the node parameter of the same name (see docs/node.md).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# (name, type, default, description); defaults match the node's own parameter defaults.
ARGUMENTS = (
    ("config", str, PathJoinSubstitution([FindPackageShare("clap_ros"), "config", "predicates.yaml"]),
     "Predicates YAML file"),
    ("weights", str, "default", "Model weights: 'default', a registered name, or a path"),
    ("source", str, "microphone", "'microphone' or 'topic'"),
    ("audio_topic", str, "audio", "Audio topic when source:=topic"),
    ("device", str, "", "Microphone: '' (default), an index, or part of the device name"),
    ("window_s", float, "0.0", "Analysis window, seconds (0: the model's clip length)"),
    ("hop_s", float, "0.5", "Seconds between windows (one message per hop)"),
    ("record_dir", str, "", "If set, record audio, /audio_predicates and /diagnostics into an mcap bag here"),
    ("audio_runtime", str, "auto", "'auto', 'onnx' (no torch in the node) or 'torch'"),
)


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, _, default, text in ARGUMENTS]
    # Typed values: '' stays a string and '5' becomes 5.0 instead of being guessed from YAML.
    parameters = {name: ParameterValue(LaunchConfiguration(name), value_type=kind) for name, kind, _, _ in ARGUMENTS}
    node = Node(
        package="clap_ros",
        executable="clap-predicate-node",
        name="clap_predicate_node",
        output="screen",
        emulate_tty=True,
        parameters=[parameters],
    )
    return LaunchDescription([*declared, node])
