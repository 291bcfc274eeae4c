"""Model configs as dataclasses: what a model *is*, independent of where its weights come from.

A config travels next to the weights (`config.json`), so a checkpoint always rebuilds the exact
architecture it was trained with.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

DEFAULT_TEMPLATE = "This is a sound of {}."
CLIP_SECONDS = 5.0  # the clip length a model config gets unless it says otherwise (the one default)
# CLAP training's cap on exp(logit_scale): the scale never exceeds it (and neither does any score's).
LOGIT_SCALE_MAX = 100.0


@dataclass
class AudioTowerConfig:
    """Which audio tower, at which rate, with tower-specific options (see `towers/registry.py`)."""

    kind: str = "cnn14"
    sample_rate: int = 44100
    options: dict[str, Any] = field(default_factory=dict)
    # True: weights come from an installed package, so checkpoints do not store them.
    weights_from_package: bool = False


@dataclass
class TextTowerConfig:
    """A `transformers` encoder. `source` is an architecture name, a local folder, or
    `package:<module>` for a model shipped inside an installed Python package."""

    kind: str = "hf"
    source: str = "bert-base-uncased"
    pooling: str = "cls"  # "cls" (CLAP 2022), "mean" (sentence-transformers), "last" (GPT-2, CLAP 2023)
    max_length: int = 100
    weights_from_package: bool = False


@dataclass
class ProjectionConfig:
    """A projection head (`clap_core/projection.py`): `kind` mlp | label_space | fused, and its
    options — label_space: labels (count), offset (audio: where the class probabilities start in
    the tower output), tau (text); fused: parts, a list of {kind, weight, options, dim}; an mlp
    inside a fused head: dim (its output width)."""

    kind: str = "mlp"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """The whole CLAP model: two towers, two projections into a shared space, a learned scale."""

    name: str = "msclap-2022"
    audio: AudioTowerConfig = field(default_factory=AudioTowerConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    embed_dim: int = 1024
    projection_dropout: float = 0.5
    audio_projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    text_projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    clip_seconds: float = CLIP_SECONDS
    logit_scale_init: float = math.log(1 / 0.07)
    logit_scale_max: float = LOGIT_SCALE_MAX
    template: str = DEFAULT_TEMPLATE

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from JSON data; unknown or mistyped fields are errors that name the field."""
        if not isinstance(data, dict):
            raise ConfigError(f"model config: expected a mapping, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        nested = {"audio": AudioTowerConfig, "text": TextTowerConfig, "audio_projection": ProjectionConfig,
                  "text_projection": ProjectionConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"model config: unknown field '{key}' (known: {', '.join(sorted(known))})")
            if key in nested:
                kwargs[key] = _sub_config(nested[key], value, key)
            else:
                kwargs[key] = value
        return cls(**kwargs)


def _sub_config(kind: type, value: Any, prefix: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"model config: '{prefix}' must be a mapping")
    known = {f.name for f in dataclasses.fields(kind)}
    for key in value:
        if key not in known:
            raise ConfigError(f"model config: unknown field '{prefix}.{key}' (known: {', '.join(sorted(known))})")
    return kind(**value)


def msclap_2022_config() -> ModelConfig:
    """Microsoft's CLAP 2022: CNN14 at 44.1 kHz + BERT-base, 1024-d joint space."""
    return ModelConfig(
        name="msclap-2022",
        audio=AudioTowerConfig(
            kind="cnn14",
            sample_rate=44100,
            options=dict(window_size=1024, hop_size=320, mel_bins=64, fmin=50.0, fmax=14000.0,
                         classes_num=527, out_dim=2048),
        ),
        text=TextTowerConfig(kind="hf", source="bert-base-uncased", pooling="cls", max_length=100),
        embed_dim=1024,
    )


def msclap_2023_config() -> ModelConfig:
    """Microsoft's CLAP 2023: HTS-AT on 7-s clips at 44.1 kHz + GPT-2, 1024-d joint space
    (settings of msclap 1.3.4: configs/config_2023.yml, and models/config.py for HTS-AT's front end)."""
    return ModelConfig(
        name="msclap-2023",
        audio=AudioTowerConfig(
            kind="htsat",
            sample_rate=44100,
            options=dict(filterbank_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50.0,
                         fmax=14000.0, classes_num=527),
        ),
        text=TextTowerConfig(kind="gpt2", source="gpt2", pooling="last", max_length=77),
        embed_dim=1024,
        clip_seconds=7.0,
    )
