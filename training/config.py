"""The training config: one YAML file → validated dataclasses, with `--set a.b=value` overrides.

Validation happens once, here, so the rest of the training code can trust every field; each error
names the dotted field (`optim.lr`) and what was expected.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from clap_core.errors import ConfigError

DEFAULT_TEMPLATES = [
    "This is a sound of {}.",
    "A recording of {}.",
    "The sound of {}.",
    "{} can be heard.",
]


@dataclass
class ModelSection:
    """Where the model starts and which parts learn.

    `weights` is anything `clap_core.load_torch_model` accepts ("default", a registered name, an
    MS-CLAP 2022 `.pth`, a checkpoint folder): training then fine-tunes it. With `weights` null the
    model is built from scratch from `config` (a path to a model-config YAML/JSON, or the mapping
    itself), through `clap_core.model.create_model`.
    """

    weights: Optional[str] = None
    config: Union[str, dict, None] = None
    audio_tower: Literal["trainable", "frozen"] = "trainable"
    text_tower: Literal["trainable", "frozen"] = "trainable"
    projections: Literal["trainable", "frozen"] = "trainable"
    logit_scale: Literal["trainable", "frozen"] = "trainable"


@dataclass
class DataSection:
    """Manifests and how clips are cut. Relative audio paths resolve against `audio_root`, or else
    against the manifest's own folder."""

    train: str = ""
    val: Optional[str] = None
    val_fraction: float = 0.1  # used only when `val` is null: clips held out of `train`
    zeroshot: Optional[str] = None  # labelled manifest (path, label) for zero-shot accuracy
    audio_root: Optional[str] = None
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    clip_seconds: Optional[float] = None  # null: the model's own clip length
    cache_audio: bool = True  # keep decoded, resampled clips in memory (small data sets)
    num_workers: int = 0
    # Texts (one per line) a gated text projection (clap_core.projection.TextGate) remembers as
    # what its trained head knows; null: every training caption.
    gate_texts: Optional[str] = None


@dataclass
class AugmentSection:
    """Cheap waveform augmentations, each switchable. Applied to training crops only."""

    random_crop: bool = True  # False: every epoch sees the same (first) window
    gain_prob: float = 0.5
    gain_db: tuple[float, float] = (-6.0, 6.0)
    shift_prob: float = 0.5  # circular time shift by up to the whole crop
    mix_prob: float = 0.0
    mix_snr_db: tuple[float, float] = (5.0, 20.0)
    background: Optional[str] = None  # manifest or folder of backgrounds; null: other training clips


@dataclass
class OptimSection:
    """The paper's recipe: Adam at 1e-3, divided by 10 when the validation loss plateaus."""

    lr: float = 1e-3
    tower_lr: Optional[float] = None  # null: optim.lr; e.g. 1e-5 to fine-tune pretrained towers gently
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    plateau_factor: float = 0.1
    plateau_patience: int = 15
    min_lr: float = 0.0
    grad_clip: Optional[float] = None


@dataclass
class TrainSection:
    """Run length, hardware and outputs."""

    epochs: int = 40
    batch_size: int = 128
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: Literal["auto", "on", "off"] = "auto"  # mixed precision; auto: on for CUDA
    output_dir: str = "runs/clap"
    best_metric: Literal["val_loss", "recall", "zeroshot_acc"] = "val_loss"
    progress: bool = True
    tensorboard: bool = False
    eval_batch_size: int = 64
    eval_first: bool = True  # evaluate the starting model as epoch 0 (shows what fine-tuning adds)
    deterministic: bool = True  # torch.use_deterministic_algorithms on CPU runs


@dataclass
class TrainConfig:
    """The whole training run."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """YAML file (or nothing: all defaults) plus `a.b=value` overrides → a checked TrainConfig."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml(Path(path))
    for item in overrides:
        apply_override(data, item)
    config = from_dict(TrainConfig, data, "")
    check(config)
    return config


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"training config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"training config {path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"training config {path}: expected a mapping at the top level")
    return data


def apply_override(data: dict[str, Any], item: str) -> None:
    """`optim.lr=1e-4` → data["optim"]["lr"] = 1e-4 (the value is read as YAML)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{item}': expected section.field=value, e.g. optim.lr=1e-4")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{item}': '{part}' is not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        node[parts[-1]] = raw


def from_dict(kind: type, data: Any, prefix: str) -> Any:
    """Build dataclass `kind` from a mapping, checking every field's type; errors name the field."""
    where = prefix or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(kind)
    known = [f.name for f in dataclasses.fields(kind)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in known:
            raise ConfigError(f"{name}: unknown field (known in {where}: {', '.join(known)})")
        kwargs[key] = _coerce(hints[key], value, name)
    return kind(**kwargs)


def _coerce(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, name)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, name)
            except ConfigError:
                pass
        raise ConfigError(f"{name}: expected {_describe(hint)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name}: expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{name}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, f"{name}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported field type {hint!r}")  # pragma: no cover - programming error


def _describe(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    names = [getattr(a, "__name__", None) or str(a) for a in args]
    return " or ".join(names) + (" or null" if type(None) in typing.get_args(hint) else "")


def check(config: TrainConfig) -> None:
    """Cross-field and range checks that types alone cannot express."""
    d, a, o, t = config.data, config.augment, config.optim, config.train
    if not d.train:
        raise ConfigError("data.train: required (a CSV or JSONL manifest of audio path + caption or label)")
    if not 0.0 <= d.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction: must be in [0, 1), got {d.val_fraction}")
    if d.val is None and d.val_fraction == 0.0:
        raise ConfigError("data.val_fraction: must be > 0 when data.val is null (validation needs clips)")
    if not d.templates or any("{}" not in tpl for tpl in d.templates):
        raise ConfigError("data.templates: need at least one template, each with a {} for the label")
    if d.clip_seconds is not None and d.clip_seconds <= 0:
        raise ConfigError(f"data.clip_seconds: must be > 0, got {d.clip_seconds}")
    if d.num_workers < 0:
        raise ConfigError(f"data.num_workers: must be >= 0, got {d.num_workers}")
    for name in ("gain_prob", "shift_prob", "mix_prob"):
        if not 0.0 <= getattr(a, name) <= 1.0:
            raise ConfigError(f"augment.{name}: must be a probability in [0, 1], got {getattr(a, name)}")
    for name in ("gain_db", "mix_snr_db"):
        low, high = getattr(a, name)
        if low > high:
            raise ConfigError(f"augment.{name}: expected [low, high] with low <= high, got [{low}, {high}]")
    if o.lr <= 0:
        raise ConfigError(f"optim.lr: must be > 0, got {o.lr}")
    if o.tower_lr is not None and o.tower_lr <= 0:
        raise ConfigError(f"optim.tower_lr: must be > 0 or null, got {o.tower_lr}")
    if not 0.0 < o.plateau_factor < 1.0:
        raise ConfigError(f"optim.plateau_factor: must be in (0, 1), got {o.plateau_factor}")
    if o.plateau_patience < 0 or o.weight_decay < 0 or o.min_lr < 0:
        raise ConfigError("optim.plateau_patience, optim.weight_decay, optim.min_lr: must be >= 0")
    if o.grad_clip is not None and o.grad_clip <= 0:
        raise ConfigError(f"optim.grad_clip: must be > 0 or null, got {o.grad_clip}")
    if t.epochs < 1:
        raise ConfigError(f"train.epochs: must be >= 1, got {t.epochs}")
    if t.batch_size < 2:
        raise ConfigError(f"train.batch_size: must be >= 2 (a contrastive batch needs negatives), got {t.batch_size}")
    if t.eval_batch_size < 1:
        raise ConfigError(f"train.eval_batch_size: must be >= 1, got {t.eval_batch_size}")
    if not (t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:")):
        raise ConfigError(f"train.device: expected auto, cpu, cuda or cuda:N, got {t.device!r}")
    m = config.model
    if m.weights is None and m.config is None:
        raise ConfigError("model: set model.weights (fine-tune: 'default', a .pth, a checkpoint folder) "
                          "or model.config (train from scratch)")
    if m.weights is not None and m.config is not None:
        raise ConfigError("model: set model.weights or model.config, not both")
    if config.train.best_metric == "zeroshot_acc" and d.zeroshot is None:
        raise ConfigError("train.best_metric: zeroshot_acc needs data.zeroshot (a labelled manifest)")


def _plain(value: Any) -> Any:
    """Tuples → lists so the dict dumps as plain YAML/JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
