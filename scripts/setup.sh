#!/usr/bin/env bash
# One command on a fresh machine: creates .venv in the repo root and installs everything
# (system audio packages when run as root, Python deps, ROS 2 Kilted wheels, the project's
# ROS interfaces, and the project itself, editable).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=""
  for p in libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then
    echo "[setup] apt-get install$need"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
PY="$ROOT/.venv/bin/python"
PIP="$PY -m pip --disable-pip-version-check -q"
# CPU build of torch first, so nothing below pulls a CUDA build.
$PIP install torch==2.13.0
$PIP install -r requirements.txt
# Packages whose declared dependencies are wrong or heavy: their code or data is all we need.
$PIP install --no-deps -r requirements-nodeps.txt
# colcon, for the ROS 2 workspace test (test/ros/test_colcon_workspace.py) and the README's workspace commands.
$PIP install colcon-core==0.21.3 colcon-ros==0.5.0
# torchaudio would only come in through the two packages above; it does not match this torch.
$PIP uninstall -y -q torchaudio >/dev/null 2>&1 || true

# GPT-2's BPE ranks (MS-CLAP 2023's tokenizer) as data from the openai-whisper sdist (MIT); the
# package itself is not installed. Tests build vocab.json/merges.txt from it (clap_core.gpt2_bpe).
WHISPER_SDIST=openai_whisper-20250625.tar.gz
mkdir -p .cache/sdists .cache/gpt2
if [ ! -f .cache/gpt2/gpt2.tiktoken ]; then
  [ -f ".cache/sdists/$WHISPER_SDIST" ] || \
    $PIP download --no-deps --no-binary :all: openai-whisper==20250625 -d .cache/sdists
  tar -xzf ".cache/sdists/$WHISPER_SDIST" -C .cache/gpt2 --strip-components=3 \
    openai_whisper-20250625/whisper/assets/gpt2.tiktoken
fi

if [ -x scripts/build_interfaces.sh ]; then
  bash scripts/build_interfaces.sh "$ROOT/.venv"
fi
$PIP install -e . --no-build-isolation
echo "[setup] done: .venv ready"
