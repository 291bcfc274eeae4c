#!/usr/bin/env bash
# Builds the project's ROS 2 interface packages (interfaces/*) into a venv, from PyPI ROS wheels.
# Usage: scripts/build_interfaces.sh VENV
# Idempotent: re-runs skip pip and cmake when the inputs have not changed (stamp file in the venv).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 VENV" >&2; exit 2; }
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=$(cd "$1" && pwd)
PY="$VENV/bin/python"
PACKAGES="audio_common_msgs clap_ros_interfaces"   # build order
ROS_WHEELS=(
  "ros-kilted-rclpy[fastrtps]" ros-kilted-std-msgs ros-kilted-sensor-msgs ros-kilted-diagnostic-msgs
  ros-kilted-ament-index-python
  ros-kilted-rosidl-default-generators ros-kilted-rosidl-core-generators ros-kilted-ament-cmake
  ros-kilted-ament-package ros-kilted-ament-cmake-ros-core ros-kilted-ament-cmake-include-directories
  catkin-pkg
)

# Everything that decides the result: the wheel list, this script, the interface sources.
inputs_hash() {
  { printf '%s\n' "${ROS_WHEELS[@]}"; cat "$0" scripts/fix_ros_wheel_cmake.sh; find interfaces -type f | LC_ALL=C sort | xargs cat; } \
    | sha256sum | cut -d' ' -f1
}
STAMP="$VENV/share/clap_ros_interfaces/.build_stamp"
HASH=$(inputs_hash)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] \
   && "$PY" -c "import rclpy, clap_ros_interfaces.msg, audio_common_msgs.msg" 2>/dev/null; then
  echo "[interfaces] up to date"
  exit 0
fi

echo "[interfaces] installing ROS 2 Kilted wheels"
"$PY" -m pip --disable-pip-version-check -q install "${ROS_WHEELS[@]}"

bash scripts/fix_ros_wheel_cmake.sh "$VENV"

export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV"
export PATH="$VENV/bin:$PATH"
for pkg in $PACKAGES; do
  echo "[interfaces] building $pkg"
  B="$ROOT/build/interfaces/$pkg"
  mkdir -p "$B"
  cmake -S "interfaces/$pkg" -B "$B" -Wno-dev \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF >"$B.log" 2>&1 \
    && cmake --build "$B" -j2 >>"$B.log" 2>&1 \
    && cmake --install "$B" >>"$B.log" 2>&1 \
    || { echo "[interfaces] $pkg failed; last lines of $B.log:" >&2; tail -30 "$B.log" >&2; exit 1; }
done

"$PY" -c "import clap_ros_interfaces.msg, audio_common_msgs.msg" \
  || { echo "[interfaces] built, but the Python modules do not import" >&2; exit 1; }
echo "$HASH" >"$STAMP"
echo "[interfaces] done"
