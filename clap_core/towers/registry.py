"""Which tower class builds which config `kind`. Towers are imported only when used, so a model
that needs onnxruntime (YAMNet) does not slow down or break one that does not."""
from __future__ import annotations

import importlib
from typing import Callable

from ..config import AudioTowerConfig, TextTowerConfig
from ..errors import ConfigError
from .base import AudioTower, TextTower

AUDIO_TOWERS: dict[str, str] = {
    "cnn14": "clap_core.towers.cnn14:build",
    "yamnet": "clap_core.towers.yamnet:build",
    "htsat": "clap_core.towers.htsat:build",
}
TEXT_TOWERS: dict[str, str] = {
    "hf": "clap_core.towers.hf_text:build",
    "gpt2": "clap_core.towers.gpt2_text:build",
}


def _builder(table: dict[str, str], kind: str, field: str) -> Callable:
    if kind not in table:
        raise ConfigError(f"{field}: unknown tower kind '{kind}' (known: {', '.join(sorted(table))})")
    module_name, func = table[kind].split(":")
    return getattr(importlib.import_module(module_name), func)


def build_audio_tower(cfg: AudioTowerConfig) -> AudioTower:
    return _builder(AUDIO_TOWERS, cfg.kind, "audio.kind")(cfg)


def build_text_tower(cfg: TextTowerConfig) -> TextTower:
    return _builder(TEXT_TOWERS, cfg.kind, "text.kind")(cfg)
