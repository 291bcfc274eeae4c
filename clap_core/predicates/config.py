"""What a predicate is: the dataclasses every stage after the YAML file trusts, and their defaults.

Reading, validating and writing the YAML file is config_file.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .background import AdaptiveBackgroundConfig

KINDS = ("state", "event")
# How a window's score comes from its ~1-s parts (see scoring.py): `max` hears a short event in the
# part it fills (default for events), `mean` averages the parts, `whole` scores the window at once
# (default for states: a state fills the window).
POOLINGS = ("max", "mean", "whole")
DEFAULT_POOLING = {"event": "max", "state": "whole"}
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # becomes a ROS topic name token

# Generic "anything else" sounds each predicate is contrasted with (see scoring.py). Broad on
# purpose: a predicate's score is high only when its prompt beats all of these.
DEFAULT_BACKGROUND: tuple[str, ...] = (
    "silence",
    "quiet room tone",
    "background noise",
    "static hiss",
    "low electrical hum",
    "people talking",
    "music",
    "wind",
    "distant traffic",
    "an air conditioner running",
    "a clicking sound",
    "a thud",
    "rustling",
    "footsteps",
    "a door closing",
    "an engine running",
    "a motor whirring",
    "birds chirping",
    "a dog barking",
    "keyboard typing",
)


@dataclass(frozen=True)
class Prototypes:
    """Audio prototypes from calibration: mean embeddings of labelled example windows.

    Scored beside the prompt: ``sigmoid(scale * (cos(a, positive) - cos(a, negative)))``.
    """

    positive: tuple[float, ...]
    negative: tuple[float, ...] | None = None
    weight: float = 0.5
    scale: float = 20.0
    model: str | None = None  # the weights they were computed with; other weights → ConfigError


@dataclass(frozen=True)
class PredicateConfig:
    """One predicate: what it sounds like (prompts) and how its score becomes a boolean."""

    name: str
    prompts: tuple[str, ...]
    negatives: tuple[str, ...] = ()
    threshold: float = 0.5
    hysteresis: float = 0.1  # turns off below threshold - hysteresis
    min_duration_s: float = 0.0  # score must stay on this long before the value turns true
    kind: str = "state"  # state: true while audible; event: fires once at onset
    refractory_s: float = 2.0  # event only: no second firing within this time
    prototypes: Prototypes | None = None
    pooling: str | None = None  # None: DEFAULT_POOLING[kind]

    def __post_init__(self) -> None:
        if self.pooling is None:
            object.__setattr__(self, "pooling", DEFAULT_POOLING.get(self.kind, "whole"))

    @property
    def threshold_off(self) -> float:
        return max(0.0, self.threshold - self.hysteresis)


@dataclass(frozen=True)
class PredicateSetConfig:
    """The whole file: predicates plus shared scoring settings."""

    predicates: tuple[PredicateConfig, ...]
    background: tuple[str, ...] = DEFAULT_BACKGROUND
    template: str | None = None  # None: the model's own template
    source: str | None = None  # the file it came from, for messages
    adaptive_background: AdaptiveBackgroundConfig = AdaptiveBackgroundConfig()  # background.py

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.predicates]

    def get(self, name: str) -> PredicateConfig:
        for p in self.predicates:
            if p.name == name:
                return p
        raise KeyError(name)

    def with_predicate(self, new: PredicateConfig) -> "PredicateSetConfig":
        return replace(self, predicates=tuple(new if p.name == new.name else p for p in self.predicates))
