"""launch/predicates.launch.py against what can run here.

`launch` and `launch_ros` cannot be installed on these machines (no registry has them), so
`ros2 launch` cannot run. Instead the file is executed with small stand-ins for the five launch
classes it uses — they only record their arguments — and the recorded description is checked: one
node from this package's console script, and every launch argument passed as the node parameter of
the same name, with the node's own defaults and types. The console script itself is checked
against setup.py, and setup.cfg must install it where `ros2 launch` looks after `colcon build`.
"""
from __future__ import annotations

import configparser
import importlib.util
import re
import sys
import types
from dataclasses import fields
from pathlib import Path

import pytest

from clap_ros.predicate_node import DESCRIPTIONS, NodeSettings

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "predicates.launch.py"
ISSUE_ARGS = {"config", "weights", "source", "audio_topic", "device", "window_s", "hop_s"}
LAUNCH_ARGS = ISSUE_ARGS | {"record_dir", "audio_runtime"}  # plus the recorder (docs/bags.md), the runtime


class _Recorded:
    """Stand-in for a launch class: keeps positional and keyword arguments."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


def _stub_modules() -> dict[str, types.ModuleType]:
    names = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument"],
        "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution"],
        "launch_ros.actions": ["Node"],
        "launch_ros.parameter_descriptions": ["ParameterValue"],
        "launch_ros.substitutions": ["FindPackageShare"],
    }
    modules = {"launch_ros": types.ModuleType("launch_ros")}
    for mod, classes in names.items():
        m = types.ModuleType(mod)
        for cls in classes:
            setattr(m, cls, type(cls, (_Recorded,), {}))
        modules[mod] = m
    return modules


@pytest.fixture
def description(monkeypatch):
    for name, module in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("predicates_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def test_declares_the_issue_arguments_with_the_node_defaults(description) -> None:
    (entities,) = description.args
    declared = {e.args[0]: e.kwargs for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    assert set(declared) == LAUNCH_ARGS
    defaults = {f.name: f.default for f in fields(NodeSettings)}
    for name, kwargs in declared.items():
        assert kwargs["description"], name
        default = kwargs["default_value"]
        if name == "config":  # the installed example file
            assert type(default).__name__ == "PathJoinSubstitution"
            assert default.args[0][1:] == ["config", "predicates.yaml"]
            assert (ROOT / "config" / "predicates.yaml").is_file()
        else:
            assert type(defaults[name])(default) == defaults[name], name


def test_node_gets_every_argument_as_the_same_typed_parameter(description) -> None:
    (entities,) = description.args
    (node,) = [e for e in entities if type(e).__name__ == "Node"]
    assert node.kwargs["package"] == "clap_ros" and node.kwargs["executable"] == "clap-predicate-node"
    (params,) = node.kwargs["parameters"]
    assert set(params) == LAUNCH_ARGS
    node_types = {f.name: type(f.default) for f in fields(NodeSettings)}
    for name, value in params.items():
        assert type(value).__name__ == "ParameterValue"
        (config,) = value.args
        assert type(config).__name__ == "LaunchConfiguration" and config.args == (name,)
        assert value.kwargs["value_type"] is node_types[name], name
    assert LAUNCH_ARGS <= set(DESCRIPTIONS)


def test_console_script_and_colcon_script_dir() -> None:
    setup_py = (ROOT / "setup.py").read_text()
    assert re.search(r'"clap-predicate-node = clap_ros\.predicate_node:main"', setup_py)
    assert 'glob("launch/*.launch.py")' in setup_py  # installed to share/clap_ros/launch
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/clap_ros"
    assert cfg["develop"]["script_dir"] == "$base/lib/clap_ros"
