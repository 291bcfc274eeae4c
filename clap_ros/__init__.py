"""clap_ros: ROS 2 adapters (node, audio sources, messages, diagnostics) around clap_core."""
