"""What a run folder holds besides logs, so a run can stop and resume exactly: its config, the
`last`/`best` checkpoints, and the optimiser, scheduler, scaler and RNG state."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
from torch import nn

from clap_core.errors import CheckpointError

from .config import TrainConfig, check, from_dict

STATE_FILE = "train_state.pt"
CONFIG_FILE = "config.yaml"


@dataclass
class TrainState:
    """What a resumed run needs besides the model weights."""

    epoch: int = 0  # epochs completed
    best: Optional[float] = None
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Resumable:
    """The objects whose state a resume restores."""

    optimizer: torch.optim.Optimizer
    scheduler: Any  # torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler

    def state_dict(self, state: TrainState, world: int) -> dict[str, Any]:
        """Plain containers and tensors only, so it loads with torch.load(weights_only=True)."""
        return {
            "epoch": state.epoch,
            "world_size": world,
            "best": state.best,
            "history": state.history,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load(self, path: Path) -> TrainState:
        """Restore optimiser, scheduler, scaler and RNGs from `path`; returns the run's progress."""
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no training state to resume from "
                                  "(was the run started by training/train.py?)") from None
        except Exception as exc:  # unpickling errors come in many types
            raise CheckpointError(f"{path}: unreadable training state ({str(exc)[:200]})") from None
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: optimiser state does not fit this model/config ({exc}); "
                                  "resume with the run's own config.yaml") from None
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        return TrainState(epoch=int(state["epoch"]), best=state["best"], history=list(state["history"]))


def write_config(out: Path, config: TrainConfig) -> None:
    """The run's own config, which `--resume` reads back."""
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def save_run(out: Path, model: nn.Module, resumable: dict[str, Any], improved: bool,
             metrics: dict[str, float]) -> None:
    """`last` every epoch (with the training state); `best` and its metrics when the score improved."""
    from clap_core.checkpoints import save_checkpoint

    save_checkpoint(model, out / "last")
    torch.save(resumable, out / "last" / STATE_FILE)
    if improved:
        save_checkpoint(model, out / "best")
        (out / "best" / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def resume_config(run_dir: Path, overrides: list[str]) -> TrainConfig:
    """A run's own config.yaml with overrides (e.g. more epochs) applied; output stays in run_dir."""
    from .config import apply_override, read_yaml

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a training run folder (no {CONFIG_FILE}); "
                              "pass the train.output_dir of an earlier run")
    data = read_yaml(path)
    for item in overrides:
        apply_override(data, item)
    data.setdefault("train", {})["output_dir"] = str(run_dir)
    config = from_dict(TrainConfig, data, "")
    check(config)
    return config
