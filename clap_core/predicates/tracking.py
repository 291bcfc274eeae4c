"""Scores over time → booleans a behaviour tree can trust.

Per predicate: a threshold with hysteresis (turns on at `threshold`, off below `threshold -
hysteresis`, so a score hovering at the threshold does not flicker), a minimum duration (the score
must stay on that long, in audio time, before the value turns true), and a kind: `state` is true
while the sound lasts; `event` fires once at onset and not again within `refractory_s` or before
the score has dropped below the off level.

Durations are counted on the tracker's own audio clock, which follows the window times except
across a jump in the stamps: a step back (a clock reset, a looped bag) counts as no time, a step
forward as at most `max_step_s` (the hop: the audio in a jump was not heard). So a jump neither
freezes a minimum duration or a refractory period for hours nor fakes one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import PredicateConfig


@dataclass
class Step:
    value: bool  # what to publish for this window
    fired: bool  # an event fired (or a state turned true) in this window


class PredicateTracker:
    """The decision logic of one predicate; `step` is called once per window, in time order."""

    def __init__(self, cfg: PredicateConfig, max_step_s: float = math.inf) -> None:
        self.cfg = cfg
        self.max_step_s = max_step_s
        self.active = False  # hysteresis state: score above the on level (and held since)
        self.on_since: float | None = None  # audio time the score first went on in this run
        self.confirmed = False  # min duration met for the current run
        self.last_fire: float | None = None
        self._t_last: float | None = None  # window time of the previous step
        self._clock = 0.0  # audio seconds elapsed, never decreasing

    def reset(self) -> None:
        self.__init__(self.cfg, self.max_step_s)  # type: ignore[misc]

    def step(self, score: float, t: float) -> Step:
        """Advance with this window's score at audio time `t` (the window's end)."""
        t = self._advance(t)
        if not math.isfinite(score):  # skipped window: hold the state, fire nothing
            return Step(value=self._state_value(), fired=False)
        cfg = self.cfg
        if self.active:
            if score < cfg.threshold_off:
                self.active, self.on_since, self.confirmed = False, None, False
        elif score >= cfg.threshold:
            self.active, self.on_since = True, t
        newly = False
        if self.active and not self.confirmed and self.on_since is not None \
                and t - self.on_since >= cfg.min_duration_s - 1e-9:
            self.confirmed = newly = True
        if cfg.kind == "state":
            return Step(value=self.confirmed, fired=newly)
        fired = newly and (self.last_fire is None or t - self.last_fire >= cfg.refractory_s - 1e-9)
        if fired:
            self.last_fire = t
        return Step(value=fired, fired=fired)

    def _advance(self, t: float) -> float:
        """The tracker's clock at window time `t` (see the module docstring)."""
        if self._t_last is not None:
            self._clock += min(max(0.0, t - self._t_last), self.max_step_s)
        self._t_last = t
        return self._clock

    def _state_value(self) -> bool:
        return self.confirmed if self.cfg.kind == "state" else False
