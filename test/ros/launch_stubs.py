"""launch/predicates.launch.py executed with recording stand-ins for the launch classes.

`launch` and `launch_ros` cannot be installed on these machines (no registry has them), so the
file runs against small classes that only keep their arguments; the tests read the recorded
description (see test_ros_launch.py).
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "predicates.launch.py"


class _Recorded:
    """Stand-in for a launch class: keeps positional and keyword arguments."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


def _stub_modules() -> dict[str, types.ModuleType]:
    names = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction", "RegisterEventHandler", "Shutdown"],
        "launch.event_handlers": ["OnProcessExit"],
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


def launch_description(monkeypatch: Any) -> Any:
    """The recorded LaunchDescription (stand-ins installed in sys.modules through `monkeypatch`)."""
    for name, module in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("predicates_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def entities(description: Any, kind: str) -> list:
    (items,) = description.args
    return [e for e in items if type(e).__name__ == kind]


def launch_arguments(description: Any) -> dict[str, dict[str, Any]]:
    """Each DeclareLaunchArgument's name → its keyword arguments (default_value, description)."""
    return {e.args[0]: e.kwargs for e in entities(description, "DeclareLaunchArgument")}
