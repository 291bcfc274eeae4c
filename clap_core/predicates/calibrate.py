"""Calibration from a few labelled recordings: thresholds and audio prototypes per predicate.

Why: a prompt alone may not separate a robot's own sounds (its gripper, its floor) well enough.
Given a handful of recordings per predicate marked positive or negative, this picks the threshold
that separates them best and, optionally, adds audio prototypes (mean embeddings of the positive
and negative evidence) scored beside the prompt. Both are written back into the predicates YAML.

What it fits on is what the node scores: each recording placed in room audio at a few levels
(`placement`), cut by the node's `Windower` at the node's hop, embedded and pooled (whole window
or its ~1-s parts, per predicate) exactly as `PredicateEngine` does. The fit also picks the pooling
(`whole` or `max` over parts, the file's own winning ties): a prompts-only predicate is a state scored
on whole windows, and examples placed in room audio show whether the sound is short enough to need
parts, and at which threshold a part of the room does not set it off.

Honesty about few examples: the quality it reports is held out. Every recording in turn is left
out, the whole fit (pooling, threshold, prototype weight and scale, prototypes) is redone on the others,
and the left-out recording's windows are scored with that fit (leave-one-recording-out); the
reported F1 pools those held-out predictions. Prompt-only F1 ("before") uses the file's own
threshold, which nothing was fitted to. A predicate is left as it was, with one line saying why,
when it has under `MIN_POSITIVES` positive recordings or when the fit does not beat the prompt on
held-out recordings; under `FEW_POSITIVES` the line warns that the held-out figure is rough.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ManifestError
from .config import PredicateConfig, PredicateSetConfig, Prototypes
from .placement import ExampleWindows, Placement, example_windows
from .scoring import PromptScorer, pool, sigmoid, unit
from .windowing import HOP_S

POSITIVE = {"pos", "positive", "1", "true", "yes"}
NEGATIVE = {"neg", "negative", "0", "false", "no"}
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
MIN_POSITIVES = 2  # fewer cannot be checked on a held-out positive at all: refused
FEW_POSITIVES = 4  # fewer: the held-out figure comes from so few folds that it is rough: warned


@dataclass(frozen=True)
class Example:
    path: Path
    predicate: str
    positive: bool


@dataclass
class PredicateReport:
    """What calibration did to one predicate; F1 per window over the placed example recordings,
    `f1_heldout` from leave-one-recording-out fits."""

    name: str
    n_pos: int
    n_neg: int
    f1_before: float  # prompt only, the file's threshold (nothing fitted)
    f1_heldout: float  # the fit, each recording scored by a fit made without it
    threshold_before: float
    threshold: float
    prototype_weight: float
    pooling_before: str = ""
    pooling: str = ""
    kept: str = ""  # why the file's settings were kept ("" when calibrated)
    warning: str = ""

    def line(self) -> str:
        head = (f"{self.name}: {self.n_pos} positive / {self.n_neg} negative recordings; held-out "
                f"(leave-one-recording-out) F1 per window {self.f1_before:.2f} → {self.f1_heldout:.2f}")
        if self.kept:
            return f"{head}; KEPT the file's settings: {self.kept}"
        pooling = f"; pooling {self.pooling_before} → {self.pooling}" if self.pooling != self.pooling_before else ""
        return (f"{head}; threshold {self.threshold_before:.2f} → {self.threshold:.2f}{pooling}; prototype weight "
                f"{self.prototype_weight:.2f}")


@dataclass(frozen=True)
class _Fit:
    threshold: float
    pooling: str
    weight: float = 0.0
    scale: float = 0.0
    pos: np.ndarray | None = None
    neg: np.ndarray | None = None


@dataclass
class _Rec:
    """One recording's windows for one predicate: prompt scores, evidence, labels."""

    prompt_whole: np.ndarray  # [n] prompt-only score of each whole window
    prompt_parts: np.ndarray  # [n, K]
    whole: np.ndarray  # [n, d]
    parts: np.ndarray  # [n, K, d] (K = 1: the whole window)
    evidence_whole: np.ndarray  # [m, d]: what a prototype is built from when windows are scored whole
    evidence_parts: np.ndarray  # [m', d]: ... when they are pooled over parts
    labels: np.ndarray  # [n] bool
    positive: bool

    def prompt(self, pooling: str) -> np.ndarray:
        """[n] prompt-only window scores, pooled as the engine pools them."""
        return pool(self.prompt_whole, self.prompt_parts, pooling)

    def evidence(self, pooling: str) -> np.ndarray:
        return self.evidence_whole if pooling == "whole" else self.evidence_parts


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


def calibrate(model: Any, cfg: PredicateSetConfig, examples: list[Example], prototypes: bool = True,
              window_s: float | None = None, hop_s: float = HOP_S, placement: Placement = Placement()
              ) -> tuple[PredicateSetConfig, list[PredicateReport]]:
    """New config with calibrated thresholds (and prototypes) for every predicate with examples;
    `window_s` defaults to the model's clip length, `hop_s` to the node's hop."""
    unknown = sorted({e.predicate for e in examples} - set(cfg.names))
    if unknown:
        raise ConfigError(f"examples: predicate(s) {', '.join(unknown)} not in the config "
                          f"(known: {', '.join(cfg.names)})")
    window_s = float(window_s or model.clip_seconds)
    windows = {path: example_windows(model, path, window_s, placement, hop_s)
               for path in dict.fromkeys(e.path for e in examples)}
    scorer = PromptScorer(model, _prompt_only(cfg))
    reports = []
    for p in cfg.predicates:
        mine = [e for e in examples if e.predicate == p.name]
        if not mine:
            continue
        pos = [e for e in mine if e.positive]
        neg = [e for e in mine if not e.positive]
        if not pos or not neg:
            raise ConfigError(f"examples for {p.name}: need at least one positive and one negative recording")
        index = cfg.names.index(p.name)
        recs = [_rec(windows[e.path], scorer, index, e.positive) for e in pos + neg]
        new_p, report = _calibrate_one(p, recs, prototypes, model.name)
        cfg = cfg.with_predicate(new_p)
        reports.append(report)
    return cfg, reports


def _prompt_only(cfg: PredicateSetConfig) -> PredicateSetConfig:
    for p in cfg.predicates:
        cfg = cfg.with_predicate(replace(p, prototypes=None))
    return cfg


def _rec(w: ExampleWindows, scorer: PromptScorer, index: int, positive: bool) -> _Rec:
    keep = w.holds >= 0 if positive else np.ones(len(w.holds), bool)
    whole = w.whole[keep]
    parts = w.parts[keep] if w.parts is not None else whole[:, None]
    s_whole = scorer.score(whole)[:, index].astype(np.float64)
    s_parts = scorer.score(parts.reshape(-1, parts.shape[-1]))[:, index].reshape(parts.shape[:2]).astype(np.float64)
    labels = w.holds[keep] == 1 if positive else np.zeros(int(keep.sum()), bool)
    ev_whole = whole[labels] if positive else whole
    if w.parts is None:
        ev_parts = ev_whole
    else:
        ev_parts = parts[w.part_holds[keep]] if positive else parts.reshape(-1, parts.shape[-1])
    return _Rec(s_whole, s_parts, whole, parts, ev_whole, ev_parts, labels, positive)


def _calibrate_one(p: PredicateConfig, recs: list[_Rec], use_protos: bool, weights: str | None
                   ) -> tuple[PredicateConfig, PredicateReport]:
    n_pos = sum(r.positive for r in recs)
    labels = np.concatenate([r.labels for r in recs])
    before = f1(np.concatenate([r.prompt(p.pooling) for r in recs]) >= p.threshold, labels)
    report = PredicateReport(p.name, n_pos, len(recs) - n_pos, before, before, p.threshold, p.threshold, 0.0,
                             p.pooling, p.pooling)
    if n_pos < MIN_POSITIVES:
        report.kept = (f"{n_pos} positive recording cannot be checked on a held-out one; "
                       f"give {MIN_POSITIVES}+ (better {FEW_POSITIVES}+), from different takes")
        return p, report
    report.f1_heldout = f1(np.concatenate(heldout_scores(p, recs, use_protos)) >= 0, labels)
    if n_pos < FEW_POSITIVES:
        report.warning = (f"{p.name}: only {n_pos} positive recordings: the held-out F1 comes from {n_pos} "
                          f"positive folds and is rough; {FEW_POSITIVES}+ recordings from different takes "
                          "make the fit trustworthy")
    if report.f1_heldout < before - 1e-9:
        report.kept = "the fit scored lower than the prompt alone on held-out recordings"
        return p, report
    fit = _fit(p, recs, use_protos)
    report.threshold, report.prototype_weight, report.pooling = fit.threshold, fit.weight, fit.pooling
    new = replace(p, threshold=round(fit.threshold, 4), hysteresis=min(p.hysteresis, round(fit.threshold, 4)),
                  pooling=fit.pooling, prototypes=None)
    if fit.pos is not None and fit.neg is not None:
        new = replace(new, prototypes=Prototypes(positive=tuple(fit.pos.tolist()), negative=tuple(fit.neg.tolist()),
                                                 weight=fit.weight, scale=round(fit.scale, 3), model=weights))
    return new, report


def _fit(p: PredicateConfig, recs: list[_Rec], use_protos: bool) -> _Fit:
    """Pooling, threshold, and prototypes when they help, fitted on `recs`: the pooling whose fit
    scores best on them, as the threshold is chosen (the file's own first, so it wins ties). The
    reported held-out figure refits all of it without the left-out recording, pooling included.
    (Choosing the pooling by a leave-one-out inside `recs` took 4x as long: docs/predicates.md.)"""
    poolings = [p.pooling] + ([m for m in ("whole", "max") if m != p.pooling] if recs[0].parts.shape[1] > 1 else [])
    best, fit = None, None
    for pooling in poolings:
        cand, cand_fit = _fit_pooled(recs, use_protos, pooling)
        if best is None or _better(cand, best):
            best, fit = cand, cand_fit
    return fit


def _fit_pooled(recs: list[_Rec], use_protos: bool, pooling: str) -> tuple[tuple[float, float, float], _Fit]:
    """(F1, separation, threshold) and the fit for one pooling. Prototypes need two positive and
    two negative recordings among `recs`: their weight and scale are chosen on prototype margins of recordings
    the prototypes were built without (an inner leave-one-out)."""
    labels = np.concatenate([r.labels for r in recs])
    best = _best_threshold(np.concatenate([r.prompt(pooling) for r in recs]), labels)
    fit = _Fit(best[2], pooling)
    n_pos = sum(r.positive for r in recs)
    if not use_protos or min(n_pos, len(recs) - n_pos) < MIN_POSITIVES:
        return best, fit
    margins = [_proto_margins(r, *_prototypes([o for o in recs if o is not r], pooling)) for r in recs]
    scale = float(np.clip(3.0 / max(float(np.std(np.concatenate([m[0] for m in margins]))), 1e-6), 1.0, 1000.0))
    for w in WEIGHTS[1:]:
        cand = _best_threshold(np.concatenate([_blend(r, m, w, scale, pooling) for r, m in zip(recs, margins)]),
                               labels)
        if _better(cand, best):
            best, fit = cand, _Fit(cand[2], pooling, w, scale, *_prototypes(recs, pooling))
    return best, fit


def _better(cand: tuple[float, float, float], best: tuple[float, float, float]) -> bool:
    """Higher F1, or the same F1 with clearly better separation (mean positive − mean negative score)."""
    return cand[0] > best[0] + 1e-9 or (cand[0] > best[0] - 1e-9 and cand[1] > best[1] + 0.05)


def heldout_scores(p: PredicateConfig, recs: list[_Rec], use_protos: bool) -> list[np.ndarray]:
    """Each recording's scores minus the threshold (>= 0: "on") under the fit made without it."""
    return [_scores(r, _fit(p, [o for o in recs if o is not r], use_protos)) for r in recs]


def _scores(r: _Rec, fit: _Fit) -> np.ndarray:
    if fit.pos is None or fit.neg is None:
        return r.prompt(fit.pooling) - fit.threshold
    return _blend(r, _proto_margins(r, fit.pos, fit.neg), fit.weight, fit.scale, fit.pooling) - fit.threshold


def _prototypes(recs: list[_Rec], pooling: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean over recordings of each recording's mean evidence (long recordings do not dominate)."""
    def mean(rs: list[_Rec]) -> np.ndarray:
        return unit(np.mean([unit(r.evidence(pooling).mean(axis=0)) for r in rs if len(r.evidence(pooling))], axis=0))
    return mean([r for r in recs if r.positive]), mean([r for r in recs if not r.positive])


def _proto_margins(r: _Rec, pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos(pos) - cos(neg) of the whole windows `[n]` and of their parts `[n, K]`."""
    return r.whole @ pos - r.whole @ neg, r.parts @ pos - r.parts @ neg


def _blend(r: _Rec, margins: tuple[np.ndarray, np.ndarray], weight: float, scale: float, pooling: str
           ) -> np.ndarray:
    """The engine's score with prototypes: blend per whole window and per part, then pool."""
    whole = (1 - weight) * r.prompt_whole + weight * sigmoid(scale * margins[0])
    parts = (1 - weight) * r.prompt_parts + weight * sigmoid(scale * margins[1])
    return pool(whole, parts, pooling)


def _best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(F1, separation, threshold): the middle of the thresholds reaching the best F1; separation
    (mean positive minus mean negative score) breaks ties between scoring options."""
    cands = np.unique(np.concatenate([[0.0, 1.0], scores]))
    mids = np.concatenate([[0.01], (cands[:-1] + cands[1:]) / 2, [0.99]])
    mids = mids[(mids > 0) & (mids < 1)]
    f1s = np.array([f1(scores >= t, labels) for t in mids])
    top = np.flatnonzero(f1s >= f1s.max() - 1e-9)
    separation = float(scores[labels].mean() - scores[~labels].mean()) if labels.any() and (~labels).any() else 0.0
    return float(f1s.max()), separation, float(np.clip(np.median(mids[top]), 0.01, 0.99))


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    """F1 of boolean predictions (0 when there is nothing to find and nothing found)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    tp = np.count_nonzero(pred & truth)
    denom = np.count_nonzero(pred) + np.count_nonzero(truth)
    return 2.0 * tp / denom if denom else 0.0
