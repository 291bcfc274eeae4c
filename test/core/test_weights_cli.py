"""clap-weights: `list` reports the search path and presence; offline, `download` fails in one line.

Runs the CLI module as its console script does, in a child process whose weights folders, home and
Hugging Face cache are empty temporary folders, with the hub switched off: nothing touches the network.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _weights_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLAP_WEIGHTS_DIR": str(tmp_path / "weights"),
           "HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "clap_core.cli.weights", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_list_reports_where_each_name_is_looked_for(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "CLAP_weights_2023.pth").write_bytes(b"x")
    result = _weights_cli(tmp_path, "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert {"default", "msclap-2022", "msclap-2023", "laion-clap-htsat-unfused"} <= set(rows)
    assert rows["msclap-2023"]["present"] and rows["msclap-2023"]["path"].endswith("weights/CLAP_weights_2023.pth")
    assert not rows["msclap-2022"]["present"]
    assert rows["msclap-2022"]["looked_in"] == [str(tmp_path / "weights" / "CLAP_weights_2022.pth"),
                                                str(tmp_path / "home" / ".cache" / "clap_ros" / "CLAP_weights_2022.pth")]
    assert rows["default"]["present"]


@pytest.mark.parametrize("name", ["msclap-2023", "laion-clap-htsat-unfused"])
def test_download_offline_fails_in_one_line(tmp_path, name):
    result = _weights_cli(tmp_path, "download", name)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: download {name}: cannot fetch"), result.stderr
    written = [p for p in (tmp_path / "weights").rglob("*") if p.is_file() and ".cache" not in p.parts]
    assert written == []  # (huggingface_hub's own .cache/ metadata folder aside)


def test_unknown_name_is_refused(tmp_path):
    result = _weights_cli(tmp_path, "download", "no-such-model")
    assert result.returncode == 2 and "invalid choice" in result.stderr
