"""The one predicate pipeline: chunks → windows → model → scores → tracked values.

The live node, bag replay and the CLIs all drive this class, so they cannot disagree. It holds no
ROS types and no clock: every time is audio time, taken from the chunks pushed in.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from ..protocol import InferenceModel
from .background import AdaptiveBackground, BackgroundState, is_quiet, quietest_part
from .config import PredicateConfig, PredicateSetConfig
from .scoring import PromptScorer
from .tracking import PredicateTracker
from .windowing import HOP_S, Window, Windower

BATCH = 16  # windows per model call when a push completes many (replay)
PART_S, PART_HOP_S = 1.0, 0.5  # sub-window parts (YAMNet: one 0.96-s patch each, every 0.48 s)
PATCH_CACHE = 256  # patches remembered across hops (YAMNet: ~9 per 5-s window, 16 windows per batch)


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

    def __init__(self, model: InferenceModel, cfg: PredicateSetConfig, window_s: float | None = None,
                 hop_s: float = HOP_S, gap_tolerance_s: float = 0.02, max_fill_s: float = 1.0,
                 patch_cache: int = PATCH_CACHE, batch: int = BATCH) -> None:
        """`patch_cache`: patch results the model's tower keeps across hops (0: none). The setting
        is the model's: an engine configures the model it is given. `batch`: most windows per
        model call when a push completes many."""
        if batch < 1:
            raise ValueError(f"engine batch must be positive, got {batch}")
        self.model = model
        self.batch = int(batch)
        self.patch_cache = model.cache_patches(patch_cache)
        self.window_s, self.hop_s = float(window_s or model.clip_seconds), float(hop_s)
        self.windower = Windower(int(model.sample_rate), self.window_s, hop_s, gap_tolerance_s, max_fill_s)
        self._lock = threading.Lock()
        self._scorer: PromptScorer | None = None
        self._trackers: dict[str, PredicateTracker] = {}
        self.cfg: PredicateSetConfig | None = None
        self.background = AdaptiveBackground(cfg.adaptive_background)
        self.set_config(cfg)

    @property
    def names(self) -> list[str]:
        return self.cfg.names if self.cfg else []

    def set_config(self, cfg: PredicateSetConfig) -> None:
        """Swap in a new predicate set (hot reload). Embeds its prompts first: if that raises, the
        old set stays live. Trackers of predicates whose decision settings are unchanged keep their
        state, so a reload does not make a true predicate blink."""
        scorer = PromptScorer(self.model, cfg)
        self.model.release_text_tower()
        with self._lock:
            old = self._trackers
            self._trackers = {p.name: self._keep_or_new(old.get(p.name), p) for p in cfg.predicates}
            self._scorer, self.cfg = scorer, cfg
            if cfg.adaptive_background != self.background.cfg:
                self.background = AdaptiveBackground(cfg.adaptive_background)

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

    def background_state(self) -> BackgroundState:
        with self._lock:
            return self.background.state()

    def reset(self) -> None:
        """Forget audio, predicate states and the learned background (a new recording)."""
        with self._lock:
            self.windower.reset()
            self.background.reset()
            for t in self._trackers.values():
                t.reset()

    # -- internals ---------------------------------------------------------------------------
    def _process(self, windows: list[Window]) -> list[WindowResult]:
        """Embeds the usable windows in batches, then scores, tracks and learns from them one by
        one, in order: the adaptive background a window is scored against is the same whether the
        windows came one per push (node) or many (replay)."""
        results = [self._one(w, e, t) for w, e, t in self._embed_usable(windows)]
        self.background.new_segment(self.windower.segment)  # a new source may have no window yet
        return results

    def _embed_usable(self, windows: list[Window]) -> list[tuple[Window, _Embedded | None, float]]:
        """Each window with its embeddings (None: not usable) and the embedding time per window."""
        usable = [w for w in windows if w.usable]
        embedded: dict[int, _Embedded] = {}
        per_window_s = 0.0
        if usable:
            t0 = time.perf_counter()
            embedded = {id(w): e for w, e in zip(usable, self._embed([w.samples for w in usable]))}
            per_window_s = (time.perf_counter() - t0) / len(usable)
        return [(w, embedded.get(id(w)), per_window_s) for w in windows]

    def _one(self, w: Window, e: _Embedded | None, embed_s: float) -> WindowResult:
        self.background.new_segment(w.segment)
        t0 = time.perf_counter()
        scored = self._score(e) if e is not None else None
        result = self._track(w, scored, embed_s + time.perf_counter() - t0)
        if e is not None and scored is not None:
            self._learn(w, e, scored[0], result)
        return result

    def _embed(self, batch: list[np.ndarray]) -> list[_Embedded]:
        """Whole-window (and, when a predicate pools parts, part) embeddings of each window."""
        assert self._scorer is not None
        out: list[_Embedded] = []
        for whole, parts, bounds in embed_windows(self.model, batch, self._scorer.needs_parts, self.batch):
            out += [_Embedded(w, None if parts is None else parts[i], bounds) for i, w in enumerate(whole)]
        return out

    def _score(self, e: _Embedded) -> tuple[np.ndarray, np.ndarray]:
        """One window's scores `[P]` and each predicate's best part, window-relative `[P, 2]`."""
        scorer, bg = self._scorer, self.background
        assert scorer is not None
        if e.parts is None:
            s = scorer.score(bg.adjust(e.whole[None]))[0]
            return s, np.broadcast_to(e.spans[0], (len(s), 2))
        s, best = scorer.pooled(bg.adjust(e.whole[None]), bg.adjust(e.parts[None]))
        return s[0], e.spans[best[0]]

    def _learn(self, w: Window, e: _Embedded, scores: np.ndarray, result: WindowResult) -> None:
        """Feed a quiet window's quietest part (or the whole) to the adaptive background."""
        if not self.background.cfg.enabled:
            return
        quiet = is_quiet(result.values, scores, result.thresholds, w.flags)
        quietest = e.whole if e.parts is None else e.parts[quietest_part(w.samples, self.windower.rate, e.spans)]
        self.background.observe(quietest, quiet, w.t_end)

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


@dataclass
class _Embedded:
    """One window's embeddings: whole `[d]`, parts `[K, d]` (None: not computed) and the parts'
    window-relative spans `[K, 2]` (the window itself when there are no parts)."""

    whole: np.ndarray
    parts: np.ndarray | None
    spans: np.ndarray


def embed_windows(model: InferenceModel, batch: list[np.ndarray], parts: bool, per_call: int = BATCH
                  ) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    """Window embeddings as the engine scores them, `per_call` windows per model call: (whole `[n, d]`,
    parts `[n, K, d]` or None, part bounds `[K, 2]` in window seconds — the whole window when
    there are no parts). Parts only when asked for (a model without parts returns the whole window
    as its one part)."""
    rate = int(model.sample_rate)
    for i in range(0, len(batch), per_call):
        chunk = np.stack(batch[i:i + per_call])
        if parts:
            whole, part_emb, bounds = model.embed_audio_parts(chunk, rate, PART_S, PART_HOP_S)
            yield np.asarray(whole), np.asarray(part_emb), np.asarray(bounds, dtype=np.float64)
        else:
            yield np.asarray(model.embed_audio(chunk, rate)), None, np.array([[0.0, chunk.shape[-1] / rate]])


def _decision(p: PredicateConfig) -> tuple:
    return (p.threshold, p.hysteresis, p.min_duration_s, p.kind, p.refractory_s)
