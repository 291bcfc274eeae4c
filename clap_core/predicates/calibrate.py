"""Calibration from a few labelled recordings: thresholds and audio prototypes per predicate.

Why: a prompt alone may not separate a robot's own sounds (its gripper, its floor) well enough.
Given a handful of recordings per predicate marked positive or negative, this picks the threshold
that separates them best and, optionally, adds audio prototypes (mean embeddings of the positive
and negative windows) scored beside the prompt. Both are written back into the predicates YAML.

Honesty about few examples: prototype scores for each recording are computed leave-one-recording-
out (its own windows never shape the prototypes they are scored against), and the prototype weight
is chosen on those scores, so the reported "calibrated F1" is not the training fit of prototypes.
The threshold is fitted on the same recordings, so check it on recordings kept aside (see docs).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..audio_io import clip_windows, load_audio, resample
from ..errors import ConfigError, ManifestError
from .config import PredicateConfig, PredicateSetConfig, Prototypes
from .scoring import PromptScorer, sigmoid, unit

POSITIVE = {"pos", "positive", "1", "true", "yes"}
NEGATIVE = {"neg", "negative", "0", "false", "no"}
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Example:
    path: Path
    predicate: str
    positive: bool


@dataclass
class PredicateReport:
    """What calibration did to one predicate; F1 per window over the example recordings."""

    name: str
    n_pos: int
    n_neg: int
    f1_before: float  # prompt only, the file's threshold
    f1_after: float  # chosen threshold (and prototypes, leave-one-out)
    threshold_before: float
    threshold: float
    prototype_weight: float

    def line(self) -> str:
        return (f"{self.name}: {self.n_pos} positive / {self.n_neg} negative recordings; F1 per window "
                f"{self.f1_before:.2f} → {self.f1_after:.2f}; threshold {self.threshold_before:.2f} → "
                f"{self.threshold:.2f}; prototype weight {self.prototype_weight:.2f}")


def read_examples(path: str | Path) -> list[Example]:
    """CSV with columns `path,predicate,label` (label pos/neg); paths relative to the CSV's folder."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read examples ({exc.strerror or exc})") from None
    if not rows or not {"path", "predicate", "label"} <= set(rows[0]):
        raise ManifestError(f"{path}: needs a header with columns path,predicate,label and at least one row")
    out = []
    for i, row in enumerate(rows, start=2):
        label = (row["label"] or "").strip().lower()
        if label not in POSITIVE | NEGATIVE:
            raise ManifestError(f"{path}:{i}: label must be pos or neg, got {row['label']!r}")
        p = Path(row["path"])
        out.append(Example(p if p.is_absolute() else path.parent / p, row["predicate"].strip(), label in POSITIVE))
    return out


def embed_recordings(model: Any, paths: list[Path], window_s: float = 5.0, hop_s: float = 1.0
                     ) -> dict[Path, np.ndarray]:
    """Unit audio embeddings of each recording's windows (short recordings tiled to one window)."""
    rate = int(model.sample_rate)
    out: dict[Path, np.ndarray] = {}
    for path in dict.fromkeys(paths):
        wave, sr = load_audio(path)
        windows = clip_windows(resample(wave, sr, rate), rate, window_s, hop_s)
        emb = model.embed_audio(np.ascontiguousarray(windows), rate)
        out[path] = unit(np.asarray(emb, dtype=np.float64))
    return out


def calibrate(model: Any, cfg: PredicateSetConfig, examples: list[Example], prototypes: bool = True,
              window_s: float = 5.0, hop_s: float = 1.0) -> tuple[PredicateSetConfig, list[PredicateReport]]:
    """New config with calibrated thresholds (and prototypes) for every predicate with examples."""
    unknown = sorted({e.predicate for e in examples} - set(cfg.names))
    if unknown:
        raise ConfigError(f"examples: predicate(s) {', '.join(unknown)} not in the config "
                          f"(known: {', '.join(cfg.names)})")
    embeddings = embed_recordings(model, [e.path for e in examples], window_s, hop_s)
    scorer = PromptScorer(model, cfg)
    reports = []
    for p in cfg.predicates:
        mine = [e for e in examples if e.predicate == p.name]
        if not mine:
            continue
        pos = [e for e in mine if e.positive]
        neg = [e for e in mine if not e.positive]
        if not pos or not neg:
            raise ConfigError(f"examples for {p.name}: need at least one positive and one negative recording")
        new_p, report = _calibrate_one(p, cfg.names.index(p.name), scorer, embeddings, pos, neg,
                                       prototypes, model.name)
        cfg = cfg.with_predicate(new_p)
        reports.append(report)
    return cfg, reports


def _calibrate_one(p: PredicateConfig, index: int, scorer: PromptScorer, emb: dict[Path, np.ndarray],
                   pos: list[Example], neg: list[Example], use_protos: bool, weights: str | None
                   ) -> tuple[PredicateConfig, PredicateReport]:
    recs = [(emb[e.path], e.positive) for e in pos + neg]
    labels = np.concatenate([np.full(len(a), y, dtype=bool) for a, y in recs])
    prompt = np.concatenate([sigmoid(scorer.scale * scorer.prompt_margins(a)[:, index]) for a, _ in recs])
    before = f1(prompt >= p.threshold, labels)
    best = (_best_threshold(prompt, labels), 0.0, 0.0)  # ((f1, separation, threshold), weight, scale)
    proto_vectors = None
    if use_protos:
        margins = _loo_margins(recs)
        scale = float(np.clip(3.0 / max(np.std(margins), 1e-6), 1.0, 1000.0))
        proto = sigmoid(scale * margins)
        for w in WEIGHTS[1:]:
            cand = _best_threshold((1 - w) * prompt + w * proto, labels)
            if (cand[0] > best[0][0] + 1e-9
                    or (cand[0] > best[0][0] - 1e-9 and cand[1] > best[0][1] + 0.05)):
                best = (cand, w, scale)
        if best[1] > 0:
            proto_vectors = (_recording_mean([a for a, y in recs if y]), _recording_mean([a for a, y in recs if not y]))
    (f1_after, _, threshold), weight, scale = best
    new = replace(p, threshold=round(threshold, 4), hysteresis=min(p.hysteresis, round(threshold, 4)))
    if proto_vectors is not None:
        new = replace(new, prototypes=Prototypes(positive=tuple(proto_vectors[0].tolist()),
                                                 negative=tuple(proto_vectors[1].tolist()),
                                                 weight=weight, scale=round(scale, 3), model=weights))
    else:
        new = replace(new, prototypes=None)
    report = PredicateReport(p.name, len(pos), len(neg), before, f1_after, p.threshold, new.threshold, weight)
    return new, report


def _recording_mean(arrays: list[np.ndarray]) -> np.ndarray:
    """Mean over recordings of each recording's mean window (long recordings do not dominate)."""
    return unit(np.mean([unit(a.mean(axis=0)) for a in arrays], axis=0))


def _loo_margins(recs: list[tuple[np.ndarray, bool]]) -> np.ndarray:
    """cos(pos prototype) - cos(neg prototype) per window, prototypes built without its recording."""
    out = []
    for i, (a, _) in enumerate(recs):
        others = [r for j, r in enumerate(recs) if j != i]
        pos = [x for x, y in others if y] or [x for x, y in recs if y]
        neg = [x for x, y in others if not y] or [x for x, y in recs if not y]
        out.append(a @ _recording_mean(pos) - a @ _recording_mean(neg))
    return np.concatenate(out)


def _best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(F1, separation, threshold): the middle of the thresholds reaching the best F1; separation
    (mean positive minus mean negative score) breaks ties between scoring options."""
    cands = np.unique(np.concatenate([[0.0, 1.0], scores]))
    mids = np.concatenate([[0.01], (cands[:-1] + cands[1:]) / 2, [0.99]])
    mids = mids[(mids > 0) & (mids < 1)]
    f1s = np.array([f1(scores >= t, labels) for t in mids])
    top = np.flatnonzero(f1s >= f1s.max() - 1e-9)
    separation = float(scores[labels].mean() - scores[~labels].mean())
    return float(f1s.max()), separation, float(np.clip(np.median(mids[top]), 0.01, 0.99))


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    """F1 of boolean predictions (0 when there is nothing to find and nothing found)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    tp = np.count_nonzero(pred & truth)
    denom = np.count_nonzero(pred) + np.count_nonzero(truth)
    return 2.0 * tp / denom if denom else 0.0
