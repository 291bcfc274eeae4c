"""Run logs: the CSV and the plot are rebuilt from the history; TensorBoard is optional."""
from __future__ import annotations

import csv
import importlib.util
import math

import pytest

from clap_core.errors import ConfigError
from training.run_log import RunLog

HISTORY = [
    {"epoch": 0, "train_loss": math.nan, "val_loss": 2.0, "a2t_r1": 0.1, "t2a_r1": 0.2, "a2t_r10": 0.5, "t2a_r10": 0.6,
     "lr": 1e-3, "temperature": 0.07, "seconds": 1.0},
    {"epoch": 1, "train_loss": 1.5, "val_loss": 1.8, "a2t_r1": 0.3, "t2a_r1": 0.2, "a2t_r10": 0.7, "t2a_r10": 0.6,
     "lr": 1e-3, "temperature": 0.07, "seconds": 1.0, "zeroshot_acc": 0.4},
]


def test_csv_and_plot_from_history(tmp_path):
    log = RunLog(tmp_path)
    log.write(HISTORY)
    with (tmp_path / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["val_loss"] for r in rows] == ["2.0", "1.8"] and rows[1]["zeroshot_acc"] == "0.4"
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert RunLog.summary(HISTORY[0], improved=True).startswith("epoch 0 (start) | val 2.0000")
    assert "train 1.5000" in RunLog.summary(HISTORY[1], improved=False)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed")
def test_tensorboard_without_the_package_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match="train.tensorboard"):
        RunLog(tmp_path, tensorboard=True)
