#!/usr/bin/env bash
# Runs the whole test suite from .venv (made by scripts/setup.sh). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}
export AMENT_PREFIX_PATH="$(pwd)/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
