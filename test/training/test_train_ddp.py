"""The DDP path: the same train.py under torchrun, two CPU processes on the gloo backend, trains
exactly like one process on the combined batch.

Both runs use a 12-clip training set. One process with batch 8 takes the sampler's first 8 indices
as its one batch per epoch; two ranks with batch 4 take the even and the odd ones of the same
permutation (DistributedSampler's order does not depend on the world size), i.e. the same 8 clips
with the same crops and captions (seeded per epoch and clip). With the loss over the gathered
global batch, losses, metrics and weights after two epochs must agree. The text tower is frozen
(eval mode) so that dropout, whose draws differ between one process and two, plays no part.
Measured: log rows within 4.8e-7, weights within 6.1e-7; bound 1e-5. Without the gather (per-rank
loss) train_loss differs by 0.74 (epoch 1) and the weights by 4.0e-3.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.run_state import STATE_FILE
from train_fixtures import clip_rows, manifests, tiny_config_dict, write_run_config  # noqa: F401


REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5
COMPARED = ("train_loss", "val_loss", "a2t_r1", "t2a_r1", "temperature")


def _train(tmp_path: Path, name: str, nproc: int, batch: int, config: dict, paths: dict, sounds45: Path,
           write_config) -> tuple[Path, str]:
    out = tmp_path / name
    path = write_config(tmp_path / f"{name}.yaml", config, paths, sounds45, out,
                            model={"text_tower": "frozen"},
                            train={"epochs": 2, "device": "cpu", "batch_size": batch}, data={"zeroshot": None})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    cmd = [sys.executable, *launcher, str(REPO / "training" / "train.py"), "--config", str(path)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stderr


def _log(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_torchrun_two_processes_train_like_one_process_on_the_global_batch(tmp_path, tiny_config_dict, manifests,
                                                                           sounds45, write_run_config):
    ddp, stderr = _train(tmp_path, "ddp", 2, 4, tiny_config_dict, manifests, sounds45, write_run_config)
    assert stderr.count("epoch 1 |") == 1 and stderr.count("epoch 2 |") == 1, stderr[-3000:]  # rank 0 logs
    state = torch.load(ddp / "last" / STATE_FILE, weights_only=True)
    assert state["world_size"] == 2 and state["epoch"] == 2
    one, _ = _train(tmp_path, "one", 1, 8, tiny_config_dict, manifests, sounds45, write_run_config)

    rows, expected = _log(ddp), _log(one)
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in expected] == ["0", "1", "2"]
    for got, want in zip(rows[1:], expected[1:]):
        for key in COMPARED:
            assert abs(float(got[key]) - float(want[key])) <= TOLERANCE, (got["epoch"], key, got[key], want[key])
    weights, reference = load_file(ddp / "last" / "model.safetensors"), load_file(one / "last" / "model.safetensors")
    assert weights.keys() == reference.keys()
    moved = max((reference[k] - weights[k]).abs().max().item() for k in reference)
    assert moved <= TOLERANCE, moved
