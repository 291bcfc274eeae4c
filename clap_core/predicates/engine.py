"""The one predicate pipeline: chunks → windows → model → scores → tracked values.

The live node, bag replay and the CLIs all drive this class, so they cannot disagree. It holds no
ROS types and no clock: every time is audio time, taken from the chunks pushed in.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, runtime_checkable

import numpy as np

from .config import PredicateConfig, PredicateSetConfig
from .scoring import PromptScorer, to_numpy
from .tracking import PredicateTracker
from .windowing import Window, Windower

BATCH = 16  # windows per model call when a push completes many (replay)
PART_S, PART_HOP_S = 1.0, 0.5  # sub-window parts (YAMNet: one 0.96-s patch each, every 0.48 s)


@runtime_checkable
class PartsModel(Protocol):
    """A model that embeds a window's parts as well as the whole (ClapModel, OnnxAudioModel).
    Models without it are scored on whole windows only; their parts' spans are the window."""

    def embed_audio_parts(self, waveform: Any, sample_rate: int, part_s: float,
                          part_hop_s: float) -> tuple[Any, Any, list[tuple[float, float]]]: ...


@dataclass
class WindowResult:
    """What the engine says about one window (one per hop)."""

    t_start: float
    t_end: float
    names: list[str]
    scores: list[float]  # in [0, 1]; NaN for a skipped window
    values: list[bool]
    thresholds: list[float]
    fired: list[str]  # predicates whose event fired (or state turned true) in this window
    flags: list[str]  # "gap", "nonfinite", "clipped", "skipped"
    inference_s: float
    level_dbfs: float
    thresholds_off: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    # Audio-time bounds of each predicate's best-scoring part (the window when there are no parts).
    part_start: list[float] = field(default_factory=list)
    part_end: list[float] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return "skipped" in self.flags

    def value(self, name: str) -> bool:
        return self.values[self.names.index(name)]

    def score(self, name: str) -> float:
        return self.scores[self.names.index(name)]

    def to_json(self, t_offset: float = 0.0) -> dict[str, Any]:
        """The replay `--json` line: times relative to `t_offset`, NaN scores as null."""
        preds = {n: {"value": bool(v), "score": (round(float(s), 5) if math.isfinite(s) else None),
                     "threshold": t}
                 for n, v, s, t in zip(self.names, self.values, self.scores, self.thresholds)}
        for n, a, b in zip(self.names, self.part_start, self.part_end):
            preds[n]["part"] = [round(a - t_offset, 4), round(b - t_offset, 4)]
        out: dict[str, Any] = {"t_start": round(self.t_start - t_offset, 4),
                               "t_end": round(self.t_end - t_offset, 4), "predicates": preds}
        if self.fired:
            out["fired"] = list(self.fired)
        if self.flags:
            out["flags"] = list(self.flags)
        out["level_dbfs"] = round(self.level_dbfs, 1)
        return out


class PredicateEngine:
    """Streaming predicates over any audio source; see the module docstring."""

    def __init__(self, model: Any, cfg: PredicateSetConfig, window_s: float = 5.0, hop_s: float = 0.5,
                 gap_tolerance_s: float = 0.02, max_fill_s: float = 1.0) -> None:
        self.model = model
        self.window_s, self.hop_s = float(window_s), float(hop_s)
        self.windower = Windower(int(model.sample_rate), window_s, hop_s, gap_tolerance_s, max_fill_s)
        self._lock = threading.Lock()
        self._scorer: PromptScorer | None = None
        self._trackers: dict[str, PredicateTracker] = {}
        self.cfg: PredicateSetConfig | None = None
        self.set_config(cfg)

    @property
    def names(self) -> list[str]:
        return self.cfg.names if self.cfg else []

    def set_config(self, cfg: PredicateSetConfig) -> None:
        """Swap in a new predicate set (hot reload). Embeds its prompts first: if that raises, the
        old set stays live. Trackers of predicates whose decision settings are unchanged keep their
        state, so a reload does not make a true predicate blink."""
        scorer = PromptScorer(self.model, cfg)
        release = getattr(self.model, "release_text_tower", None)
        if callable(release):
            release()
        with self._lock:
            old = self._trackers
            self._trackers = {p.name: self._keep_or_new(old.get(p.name), p) for p in cfg.predicates}
            self._scorer, self.cfg = scorer, cfg

    def _keep_or_new(self, old: PredicateTracker | None, p: PredicateConfig) -> PredicateTracker:
        if old is not None and _decision(old.cfg) == _decision(p):
            old.cfg = p
            return old
        return PredicateTracker(p, max_step_s=self.hop_s)

    def push(self, samples: np.ndarray, sample_rate: int, t_first: float) -> list[WindowResult]:
        """Add audio that starts at audio time `t_first`; returns one result per completed hop."""
        with self._lock:
            return self._process(self.windower.push(samples, sample_rate, t_first))

    def push_many(self, chunks: Iterable[tuple[np.ndarray, int, float]]) -> list[WindowResult]:
        """Several chunks at once (offline replay): windowed one by one exactly as `push` would,
        then scored in batches, which is faster than one window per model call."""
        with self._lock:
            windows = [w for samples, rate, t in chunks for w in self.windower.push(samples, rate, t)]
            return self._process(windows)

    def flush(self) -> list[WindowResult]:
        """End of a recording: process the samples still held back by the resampler."""
        with self._lock:
            return self._process(self.windower.flush())

    def reset(self) -> None:
        """Forget audio and predicate states (a new recording)."""
        with self._lock:
            self.windower.reset()
            for t in self._trackers.values():
                t.reset()

    # -- internals ---------------------------------------------------------------------------
    def _process(self, windows: list[Window]) -> list[WindowResult]:
        if not windows:
            return []
        assert self._scorer is not None and self.cfg is not None
        usable = [w for w in windows if w.usable]
        scores: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        per_window_s = 0.0
        if usable:
            t0 = time.perf_counter()
            all_scores, all_spans = self._score([w.samples for w in usable])
            per_window_s = (time.perf_counter() - t0) / len(usable)
            scores = {id(w): sp for w, sp in zip(usable, zip(all_scores, all_spans))}
        return [self._track(w, scores.get(id(w)), per_window_s) for w in windows]

    def _score(self, batch: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Scores `[N, P]` and each predicate's best part as window-relative (start, end) `[N, P, 2]`."""
        scorer = self._scorer
        assert scorer is not None
        rate = int(self.model.sample_rate)
        parts = scorer.needs_parts and isinstance(self.model, PartsModel)
        out, spans = [], []
        for i in range(0, len(batch), BATCH):
            chunk = np.stack(batch[i:i + BATCH])
            if parts:
                whole, part_emb, bounds = self.model.embed_audio_parts(chunk, rate, PART_S, PART_HOP_S)
                s, best = scorer.pooled(to_numpy(whole), to_numpy(part_emb))
                spans.append(np.asarray(bounds, dtype=np.float64)[best])
            else:
                s = scorer.score(to_numpy(self.model.embed_audio(chunk, rate)))
                spans.append(np.broadcast_to([0.0, chunk.shape[-1] / rate], (*s.shape, 2)))
            out.append(s)
        return np.concatenate(out), np.concatenate(spans)

    def _track(self, w: Window, scored: tuple[np.ndarray, np.ndarray] | None,
               inference_s: float) -> WindowResult:
        assert self.cfg is not None
        preds = self.cfg.predicates
        flags = list(w.flags)
        if scored is None:
            scores = np.full(len(preds), np.nan, np.float32)
            spans = np.tile([0.0, w.t_end - w.t_start], (len(preds), 1))
            flags.append("skipped")
            inference_s = 0.0
        else:
            scores, spans = scored
        values, fired = [], []
        for p, s in zip(preds, scores):
            step = self._trackers[p.name].step(float(s), w.t_end)
            values.append(step.value)
            if step.fired:
                fired.append(p.name)
        return WindowResult(t_start=w.t_start, t_end=w.t_end, names=[p.name for p in preds],
                            scores=[float(s) for s in scores], values=values,
                            thresholds=[p.threshold for p in preds], fired=fired, flags=flags,
                            inference_s=inference_s, level_dbfs=w.level_dbfs,
                            thresholds_off=[p.threshold_off for p in preds], kinds=[p.kind for p in preds],
                            part_start=[w.t_start + float(a) for a in spans[:, 0]],
                            part_end=[w.t_start + float(b) for b in spans[:, 1]])


def _decision(p: PredicateConfig) -> tuple:
    return (p.threshold, p.hysteresis, p.min_duration_s, p.kind, p.refractory_s)
