#!/usr/bin/env bash
# The PyPI ROS 2 wheels' CMake exports hard-code the include dirs of the machine that built them
# (/opt/python/cp311-cp311/...): point them at this venv's Python and NumPy so that CMake builds of
# interface packages (scripts/build_interfaces.sh, or `colcon build` run by this venv) find them.
# Usage: scripts/fix_ros_wheel_cmake.sh VENV   (idempotent)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 VENV" >&2; exit 2; }
VENV=$(cd "$1" && pwd)
PY="$VENV/bin/python"
PY_INC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NP_INC=$("$PY" -c "import numpy; print(numpy.get_include())")
for f in "$VENV"/share/*/cmake/*.cmake; do
  if grep -q "/opt/python/cp311-cp311" "$f"; then
    sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INC#g" \
           -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INC#g" "$f"
  fi
done
