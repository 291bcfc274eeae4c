"""The model a run trains: built or loaded, parts frozen or trainable as configured, and the
optimiser's parameter groups."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from clap_core.errors import ConfigError

from .config import TrainConfig


def build_model(config: TrainConfig):
    """The starting model: fine-tune named/loaded weights, or a fresh one from a model config."""
    from clap_core import load_torch_model
    from clap_core.model import ClapModel, create_model
    from clap_core.config import ModelConfig

    section = config.model
    if section.weights is not None:
        model = load_torch_model(section.weights, device="cpu")
        if not isinstance(model, ClapModel):  # LAION-CLAP: transformers' ClapModel, no towers to freeze here
            raise ConfigError(f"model.weights={section.weights}: {type(model).__name__} (LAION-CLAP) cannot be "
                              "fine-tuned by training/train.py yet; fine-tune a project checkpoint, MS-CLAP "
                              "2022 or 2023 weights, or 'default'")
        return model
    spec = section.config
    if isinstance(spec, str):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"model.config: no such file {path}")
        try:
            spec = yaml.safe_load(path.read_text())  # JSON is YAML too
        except yaml.YAMLError as exc:
            raise ConfigError(f"model.config: {path} is not valid YAML/JSON ({exc})") from None
    try:
        model_config = ModelConfig.from_dict(spec)
    except TypeError as exc:
        raise ConfigError(f"model.config: {exc}") from None
    return create_model(model_config)


def set_trainable(model: nn.Module, config: TrainConfig) -> list[nn.Parameter]:
    """Freeze or unfreeze each part as configured; returns the parameters the optimiser updates."""
    s = config.model
    parts = {
        "audio_tower": (s.audio_tower, [model.audio_tower]),
        "text_tower": (s.text_tower, [model.text_tower]),
        "projections": (s.projections, [model.audio_projection, model.text_projection]),
    }
    for choice, modules in parts.values():
        for module in modules:
            for p in module.parameters():
                p.requires_grad_(choice == "trainable")
    model.logit_scale.requires_grad_(s.logit_scale == "trainable")
    for name in ("audio_tower", "text_tower"):
        tower = getattr(model, name)
        if getattr(s, name) == "trainable" and not list(tower.parameters()):
            print(f"note: model.{name}: {type(tower).__name__} has no trainable weights; it stays as it is",
                  file=sys.stderr)
    store_trained_towers(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("model: every part is frozen (or has no trainable weights); make one 'trainable'")
    return params


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Towers at optim.tower_lr (pretrained encoders usually want a smaller step), the rest at optim.lr."""
    tower_lr = config.optim.tower_lr or config.optim.lr
    towers = [p for m in (model.audio_tower, model.text_tower) for p in m.parameters() if p.requires_grad]
    ids = {id(p) for p in towers}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    return [g for g in ({"params": rest, "lr": config.optim.lr}, {"params": towers, "lr": tower_lr}) if g["params"]]


def store_trained_towers(model: nn.Module) -> None:
    """A tower whose weights normally come from an installed package is *stored* in checkpoints once
    it trains; otherwise reloading would silently bring back the package's untrained weights."""
    config = model.config
    for side in ("audio", "text"):
        tower = getattr(model, f"{side}_tower")
        section = getattr(config, side)
        if section.weights_from_package and any(p.requires_grad for p in tower.parameters()):
            config = dataclasses.replace(config, **{side: dataclasses.replace(section, weights_from_package=False)})
    model.config = config


def train_mode(model: nn.Module, config: TrainConfig) -> None:
    """Train mode for learning parts; frozen towers stay in eval mode (BatchNorm stats, dropout off)."""
    model.train()
    if config.model.audio_tower == "frozen":
        model.audio_tower.eval()
    if config.model.text_tower == "frozen":
        model.text_tower.eval()
