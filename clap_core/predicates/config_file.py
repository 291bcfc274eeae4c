"""Predicates YAML → validated dataclasses (config.py), and back (calibration writes its results).

Validated once, at the edge: every later stage can trust the values. Each error names the
predicate and the field (``predicates.pour_done.threshold: must be in [0, 1], got 2.0``) so a
roboticist can fix the file from the one-line message alone.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .background import AdaptiveBackgroundConfig, dump_adaptive_background, parse_adaptive_background
from .config import (DEFAULT_BACKGROUND, DEFAULT_POOLING, KINDS, NAME_RE, POOLINGS, PredicateConfig,
                     PredicateSetConfig, Prototypes)

TOP_FIELDS = ("predicates", "defaults", "background", "template", "adaptive_background")
PREDICATE_FIELDS = ("prompt", "prompts", "negatives", "threshold", "hysteresis", "min_duration_s",
                    "kind", "refractory_s", "prototypes", "pooling")
DEFAULT_FIELDS = ("threshold", "hysteresis", "min_duration_s", "kind", "refractory_s", "pooling")
PROTOTYPE_FIELDS = ("positive", "negative", "weight", "scale", "model")


def _field_defaults(cls: type) -> dict[str, Any]:
    """A dataclass's defaults: a field the file leaves out gets exactly what the dataclass says."""
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


_PREDICATE = _field_defaults(PredicateConfig)
_PROTOTYPES = _field_defaults(Prototypes)


def load_predicate_config(path: str | Path) -> PredicateSetConfig:
    """Read and validate a predicates YAML file; raises ConfigError naming file, predicate and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read predicates file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:  # e.g. caught half-written, inside a multi-byte character
        raise ConfigError(f"{path}: not UTF-8 text at byte {exc.start} (cut off while being written?)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    try:
        cfg = parse_predicate_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return replace(cfg, source=str(path))


def parse_predicate_config(data: Any) -> PredicateSetConfig:
    """Validate already-parsed YAML data (a mapping with a ``predicates`` mapping)."""
    if not isinstance(data, dict):
        raise ConfigError("top level: expected a mapping with a 'predicates' key, "
                          f"got {type(data).__name__}")
    _check_keys(data, TOP_FIELDS, "top level")
    defaults = _parse_defaults(data.get("defaults") or {})
    preds = data.get("predicates")
    if not isinstance(preds, dict) or not preds:
        raise ConfigError("predicates: must be a non-empty mapping of name → {prompt: ...}")
    parsed = tuple(_parse_predicate(str(name), spec, defaults) for name, spec in preds.items())
    background = DEFAULT_BACKGROUND
    if "background" in data:
        background = _strings(data["background"], "background", allow_empty=True)
    template = data.get("template")
    if template is not None:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ConfigError(f"template: must be a string with exactly one '{{}}', got {template!r}")
    adaptive = AdaptiveBackgroundConfig()
    if "adaptive_background" in data:
        adaptive = parse_adaptive_background(data["adaptive_background"])
    return PredicateSetConfig(predicates=parsed, background=background, template=template,
                              adaptive_background=adaptive)


def _parse_defaults(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ConfigError(f"defaults: must be a mapping, got {type(spec).__name__}")
    _check_keys(spec, DEFAULT_FIELDS, "defaults")
    return dict(spec)


def _parse_predicate(name: str, spec: Any, defaults: dict[str, Any]) -> PredicateConfig:
    where = f"predicates.{name}"
    if not NAME_RE.match(name):
        raise ConfigError(f"{where}: name must start with a letter and hold only letters, digits "
                          "and '_' (it becomes a ROS topic name)")
    if isinstance(spec, str):  # shorthand: `name: "prompt text"`
        spec = {"prompt": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a mapping with at least 'prompt', got {type(spec).__name__}")
    _check_keys(spec, PREDICATE_FIELDS, where)
    merged = {**defaults, **spec}
    prompts = _prompts(spec, where)
    kind = merged.get("kind", _PREDICATE["kind"])
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    pooling = merged.get("pooling", DEFAULT_POOLING[kind])
    if pooling not in POOLINGS:
        raise ConfigError(f"{where}.pooling: must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    threshold = _number(merged, "threshold", _PREDICATE["threshold"], where, 0.0, 1.0)
    hysteresis = _number(merged, "hysteresis", _PREDICATE["hysteresis"], where, 0.0, 1.0)
    cfg = PredicateConfig(
        name=name,
        prompts=prompts,
        negatives=_strings(spec.get("negatives", []), f"{where}.negatives", allow_empty=True),
        threshold=threshold,
        hysteresis=hysteresis,
        min_duration_s=_number(merged, "min_duration_s", _PREDICATE["min_duration_s"], where, 0.0, 3600.0),
        kind=kind,
        refractory_s=_number(merged, "refractory_s", _PREDICATE["refractory_s"], where, 0.0, 3600.0),
        prototypes=_prototypes(spec.get("prototypes"), f"{where}.prototypes"),
        pooling=pooling,
    )
    return cfg


def _prompts(spec: dict[str, Any], where: str) -> tuple[str, ...]:
    if "prompt" in spec and "prompts" in spec:
        raise ConfigError(f"{where}: give either 'prompt' or 'prompts', not both")
    if "prompt" in spec:
        return _strings([spec["prompt"]], f"{where}.prompt")
    if "prompts" in spec:
        return _strings(spec["prompts"], f"{where}.prompts")
    raise ConfigError(f"{where}.prompt: missing; write what it sounds like, e.g. "
                      "prompt: \"liquid being poured into a container\"")


def _prototypes(spec: Any, where: str) -> Prototypes | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a mapping with 'positive' (written by clap-predicates calibrate)")
    _check_keys(spec, PROTOTYPE_FIELDS, where)
    if "positive" not in spec:
        raise ConfigError(f"{where}.positive: missing (re-run clap-predicates calibrate)")
    positive = _vector(spec["positive"], f"{where}.positive")
    negative = None
    if spec.get("negative") is not None:
        negative = _vector(spec["negative"], f"{where}.negative")
        if len(negative) != len(positive):
            raise ConfigError(f"{where}.negative: length {len(negative)} differs from positive's {len(positive)}")
    model = spec.get("model")
    if model is not None and not isinstance(model, str):
        raise ConfigError(f"{where}.model: must be a string, got {model!r}")
    return Prototypes(positive=positive, negative=negative,
                      weight=_number(spec, "weight", _PROTOTYPES["weight"], where, 0.0, 1.0),
                      scale=_number(spec, "scale", _PROTOTYPES["scale"], where, 0.0, 1000.0), model=model)


def _vector(value: Any, where: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{where}: must be a non-empty list of numbers")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{where}[{i}]: must be a finite number, got {v!r}")
        out.append(float(v))
    return tuple(out)


def _number(spec: dict[str, Any], key: str, default: float, where: str, lo: float, hi: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}.{key}: must be a number, got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(f"{where}.{key}: must be in [{_fmt(lo)}, {_fmt(hi)}], got {value!r}")
    return float(value)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _strings(value: Any, where: str, allow_empty: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: must be a string or a list of strings, got {type(value).__name__}")
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{where}[{i}]: must be a non-empty string, got {v!r}")
        out.append(v.strip())
    if not out and not allow_empty:
        raise ConfigError(f"{where}: must not be empty")
    return tuple(out)


def _check_keys(spec: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in spec:
        if key not in known:
            prefix = "" if where == "top level" else f"{where}."
            raise ConfigError(f"{prefix}{key}: unknown field (known: {', '.join(known)})")


def dump_predicate_config(cfg: PredicateSetConfig) -> dict[str, Any]:
    """The YAML data for a config (used by calibration to write thresholds and prototypes back)."""
    preds: dict[str, Any] = {}
    for p in cfg.predicates:
        spec: dict[str, Any] = {}
        if len(p.prompts) == 1:
            spec["prompt"] = p.prompts[0]
        else:
            spec["prompts"] = list(p.prompts)
        if p.negatives:
            spec["negatives"] = list(p.negatives)
        spec.update(threshold=round(p.threshold, 4), hysteresis=round(p.hysteresis, 4),
                    min_duration_s=p.min_duration_s, kind=p.kind)
        if p.kind == "event":
            spec["refractory_s"] = p.refractory_s
        if p.pooling != DEFAULT_POOLING[p.kind]:
            spec["pooling"] = p.pooling
        if p.prototypes is not None:
            pr = p.prototypes
            proto: dict[str, Any] = {"weight": pr.weight, "scale": pr.scale}
            if pr.model is not None:
                proto["model"] = pr.model
            proto["positive"] = [round(v, 5) for v in pr.positive]
            if pr.negative is not None:
                proto["negative"] = [round(v, 5) for v in pr.negative]
            spec["prototypes"] = proto
        preds[p.name] = spec
    data: dict[str, Any] = {}
    if cfg.template is not None:
        data["template"] = cfg.template
    if cfg.background != DEFAULT_BACKGROUND:
        data["background"] = list(cfg.background)
    if cfg.adaptive_background != AdaptiveBackgroundConfig():
        data["adaptive_background"] = dump_adaptive_background(cfg.adaptive_background)
    data["predicates"] = preds
    return data


def write_predicate_config(cfg: PredicateSetConfig, path: str | Path) -> None:
    """Write a config as YAML (prototype vectors in flow style, one line each)."""
    text = yaml.safe_dump(dump_predicate_config(cfg), sort_keys=False, width=120, allow_unicode=True)
    Path(path).write_text(text, encoding="utf-8")
