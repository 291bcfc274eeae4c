"""bench/gpu_inference.py is run by hand on a lent GPU; here it must stop at once with one clear line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run for minutes")
def test_gpu_script_without_cuda_is_one_line_and_exit_2() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_inference.py")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sees no CUDA device" in lines[0] and "NVIDIA GPU" in lines[0], done.stderr
    assert done.stdout == ""
