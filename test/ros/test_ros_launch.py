"""launch/predicates.launch.py against what can run here.

`launch` and `launch_ros` cannot be installed on these machines (no registry has them), so
`ros2 launch` cannot run. Instead the file is executed with small stand-ins for the launch classes
it uses — they only record their arguments — and the recorded description is checked: one node from
this package's console script, every node parameter a launch argument of the same name passed as
text with the node's own default, and an exit handler that ends the launch with the node and fails
it when the node failed. The console script itself is checked against setup.py, and setup.cfg must
install it where `ros2 launch` looks after `colcon build` (test_colcon_workspace.py builds it).
"""
from __future__ import annotations

import configparser
import re
import types
from dataclasses import fields
from pathlib import Path

import pytest

from clap_core.errors import ConfigError
from clap_ros.node_settings import DESCRIPTIONS, NodeSettings, coerce
from launch_stubs import entities, launch_arguments, launch_description

ROOT = Path(__file__).resolve().parents[2]
NODE_PARAMS = {f.name for f in fields(NodeSettings)}


@pytest.fixture
def description(monkeypatch):
    return launch_description(monkeypatch)


def test_declares_every_node_parameter_with_the_node_default(description) -> None:
    declared = launch_arguments(description)
    assert set(declared) == NODE_PARAMS
    for f in fields(NodeSettings):
        kwargs = declared[f.name]
        assert kwargs["description"] == DESCRIPTIONS[f.name]
        default = kwargs["default_value"]
        if f.name == "config":  # the installed example file
            assert type(default).__name__ == "PathJoinSubstitution"
            assert default.args[0][1:] == ["config", "predicates.yaml"]
            assert (ROOT / "config" / "predicates.yaml").is_file()
        else:  # text, which the node turns back into its own default
            assert isinstance(default, str), f.name
            assert coerce(f.name, type(f.default), default) == f.default, f.name


def test_node_gets_every_argument_as_text(description) -> None:
    (node,) = entities(description, "Node")
    assert node.kwargs["package"] == "clap_ros" and node.kwargs["executable"] == "clap-predicate-node"
    (params,) = node.kwargs["parameters"]
    assert set(params) == NODE_PARAMS
    for name, value in params.items():
        assert type(value).__name__ == "ParameterValue"
        (config,) = value.args
        assert type(config).__name__ == "LaunchConfiguration" and config.args == (name,)
        assert value.kwargs["value_type"] is str, name


@pytest.mark.parametrize("name, text", [("window_s", "abc"), ("sample_rate", "1.5"), ("publish_bools", "maybe")])
def test_bad_launch_text_is_named_by_the_node(name, text) -> None:
    kind = type(NodeSettings.__dataclass_fields__[name].default)
    with pytest.raises(ConfigError, match=rf"^parameter '{name}': expected .*{text!r}"):
        coerce(name, kind, text)


def test_launch_ends_with_the_node_and_fails_when_it_failed(description) -> None:
    (node,) = entities(description, "Node")
    (register,) = entities(description, "RegisterEventHandler")
    (handler,) = register.args
    assert type(handler).__name__ == "OnProcessExit" and handler.kwargs["target_action"] is node
    on_exit = handler.kwargs["on_exit"]

    (shutdown,) = on_exit(types.SimpleNamespace(returncode=0), None)
    assert type(shutdown).__name__ == "Shutdown"

    shutdown, fail = on_exit(types.SimpleNamespace(returncode=2), None)
    assert type(shutdown).__name__ == "Shutdown" and "code 2" in shutdown.kwargs["reason"]
    assert type(fail).__name__ == "OpaqueFunction"
    with pytest.raises(RuntimeError, match="exited with code 2"):
        fail.kwargs["function"](None)


def test_console_script_and_colcon_script_dir() -> None:
    setup_py = (ROOT / "setup.py").read_text()
    assert re.search(r'"clap-predicate-node = clap_ros\.predicate_node:main"', setup_py)
    assert 'glob("launch/*.launch.py")' in setup_py  # installed to share/clap_ros/launch
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/clap_ros"
    assert cfg["develop"]["script_dir"] == "$base/lib/clap_ros"


def test_docs_list_every_launch_argument() -> None:
    text = (ROOT / "docs" / "node.md").read_text()
    listed = text[text.index("**Launch arguments:**"):text.index("**Start-up checks:**")]
    assert {name for name in NODE_PARAMS if f"`{name}`" not in listed} == set()
    table = text[text.index("## Parameters"):]
    assert {name for name in NODE_PARAMS if f"`{name}`" not in table} == set()


def test_interfaces_hint_names_the_fix_for_each_set_up(monkeypatch) -> None:
    from clap_ros import messages

    monkeypatch.delenv("COLCON_PREFIX_PATH", raising=False)
    if messages.in_colcon_install():
        pytest.skip("this checkout runs from a colcon install space")
    assert "scripts/setup.sh" in messages.interfaces_hint() and "colcon" not in messages.interfaces_hint()
    monkeypatch.setenv("COLCON_PREFIX_PATH", "/ws/install")  # what `source install/setup.bash` sets
    hint = messages.interfaces_hint()
    assert "colcon build" in hint and "install/setup.bash" in hint and "setup.sh to" not in hint
