"""The DDP path: the same train.py under torchrun, two CPU processes on the gloo backend."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.loop import STATE_FILE
from train_fixtures import clip_rows, manifests, tiny_config_dict, write_run_config  # noqa: F401


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_torchrun_two_processes_train_with_rank0_logging(tmp_path, tiny_config_dict, manifests, sounds45,
                                                         write_run_config):
    out = tmp_path / "out"
    path = write_run_config(tmp_path / "run.yaml", tiny_config_dict, manifests, sounds45, out,
                            train={"epochs": 2, "device": "cpu"}, data={"zeroshot": None})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "training" / "train.py"), "--config", str(path)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("epoch 1 |") == 1 and proc.stderr.count("epoch 2 |") == 1, proc.stderr[-3000:]
    state = torch.load(out / "last" / STATE_FILE, weights_only=True)
    assert state["world_size"] == 2 and state["epoch"] == 2
    with (out / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"] and all(float(r["val_loss"]) > 0 for r in rows)
