"""The README's ROS 2 workspace, for real: this checkout copied into `ws/src/clap_ros`, the interface
packages linked beside it, plain `colcon build` (colcon-core + colcon-ros, run by this venv's
Python, the venv's PyPI ROS 2 standing in for /opt/ros), then the installed console script started
from the install space's environment, publishing /audio_predicates over real DDS.

rosdep and `ros2 launch` are the two README steps that cannot run here (no rosdistro index, no
`launch` package); pip's requirements are already in this venv.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("colcon_core", reason="colcon is installed by scripts/setup.sh")
pytest.importorskip("colcon_ros", reason="colcon-ros is installed by scripts/setup.sh")
pytest.importorskip("rclpy", reason="rclpy is installed by scripts/setup.sh")

from node_harness import ROOT, NodeProcess, publish_audio, sensor_qos, wait_until_up  # noqa: E402

pytestmark = pytest.mark.slow
PACKAGES = {"clap_ros", "clap_ros_interfaces", "audio_common_msgs"}
LINKED = ("clap_ros_interfaces", "audio_common_msgs")  # README: ln -s clap_ros/interfaces/<pkg> src/
RATE = 16000


def _checkout_copy(dest: Path) -> None:
    """What `git clone` gives: the tracked files only."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _underlay_env() -> dict[str, str]:
    """What `source /opt/ros/<distro>/setup.bash` gives, for the venv's PyPI ROS 2 (README)."""
    venv = sys.prefix
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLCON_PREFIX_PATH")}
    env.update(PATH=f"{venv}/bin:{env['PATH']}", AMENT_PREFIX_PATH=venv, CMAKE_PREFIX_PATH=venv)
    return env


def _sourced(ws: Path, env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", ". install/local_setup.sh && env -0"], cwd=ws, env=env,
                         capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, dict[str, str], str]:
    if shutil.which("cmake") is None or shutil.which("git") is None:
        pytest.skip("cmake and git are needed to build the workspace")
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True).returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout")
    ws = tmp_path_factory.mktemp("ws")
    _checkout_copy(ws / "src" / "clap_ros")
    for pkg in LINKED:
        (ws / "src" / pkg).symlink_to(Path("clap_ros") / "interfaces" / pkg)
    env = _underlay_env()
    colcon = shutil.which("colcon", path=env["PATH"])  # the venv's, run by its Python
    assert colcon is not None
    build = subprocess.run([colcon, "build"], cwd=ws, env=env,
                           capture_output=True, text=True, timeout=900)
    log = build.stdout + build.stderr
    assert build.returncode == 0, log[-4000:]
    return ws, _sourced(ws, env), log


def test_plain_colcon_build_finds_and_installs_the_packages(workspace) -> None:
    ws, _, log = workspace
    finished = {line.split()[2] for line in log.splitlines() if line.startswith("Finished <<< ")}
    assert finished == PACKAGES, log[-2000:]
    share, lib = ws / "install/clap_ros/share/clap_ros", ws / "install/clap_ros/lib/clap_ros"
    for rel in ("package.xml", "launch/predicates.launch.py", "config/predicates.yaml"):
        assert (share / rel).is_file(), rel
    assert os.access(lib / "clap-predicate-node", os.X_OK)
    assert (ws / "install/clap_ros/share/ament_index/resource_index/packages/clap_ros").is_file()


def test_install_space_environment_imports_the_built_packages(workspace) -> None:
    ws, env, _ = workspace
    code = "import clap_ros, clap_ros_interfaces.msg, audio_common_msgs.msg as a; print(clap_ros.__file__); " \
           "print(clap_ros_interfaces.msg.__file__); print(a.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ws, env=env, capture_output=True, text=True, timeout=60)
    paths = out.stdout.split()
    assert out.returncode == 0 and len(paths) == 3, out.stdout + out.stderr
    for path in paths:
        assert Path(path).resolve().is_relative_to((ws / "install").resolve()), paths
    hint = subprocess.run([sys.executable, "-c", "from clap_ros.messages import interfaces_hint as h; print(h())"],
                          cwd=ws, env={k: v for k, v in env.items() if k != "COLCON_PREFIX_PATH"},
                          capture_output=True, text=True, timeout=60).stdout
    assert "colcon build" in hint and "scripts/setup.sh" not in hint, hint  # the fix for this set-up


def test_installed_node_publishes_predicates_from_topic_audio(workspace, client, default_weights) -> None:
    from audio_common_msgs.msg import AudioStamped
    from clap_ros_interfaces.msg import AudioPredicates

    ws, env, _ = workspace
    share = ws / "install/clap_ros/share/clap_ros"
    # Numbers and booleans as text, the way launch/predicates.launch.py passes them.
    params = {"config": share / "config/predicates.yaml", "source": "topic", "weights": default_weights,
              "window_s": "'5.0'", "hop_s": "'1.0'", "publish_bools": "'true'"}
    node = NodeProcess(params, command=[str(ws / "install/clap_ros/lib/clap_ros/clap-predicate-node")],
                       base_env=env, cwd=ws)
    try:
        got = client.collect(AudioPredicates, node.preds_topic)
        pub = client.node.create_publisher(AudioStamped, node.audio_topic, sensor_qos())
        wait_until_up(client, node, pub, timeout=120)
        noise = (np.random.default_rng(0).standard_normal(7 * RATE) * 0.05).astype(np.float32)
        publish_audio(client, pub, noise, RATE, 1_000.0, speed=4.0)
        client.spin_until(lambda: len(got) >= 2, 30, "two AudioPredicates messages", node)
        names = ["pour_done", "water_running", "vacuum_on", "contact_onset", "paper_crumpled"]
        assert list(got[0].names) == names, got[0].names
        assert all(np.isfinite(m.scores).all() for m in got)
    finally:
        assert node.stop() == 0, node.output
