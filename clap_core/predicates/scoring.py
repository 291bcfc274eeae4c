"""Audio embeddings → one score in [0, 1] per predicate, comparable across predicates.

Why this shape: a raw CLAP similarity means nothing on its own (its level depends on the prompt's
wording and on the model), so each predicate is scored *against alternatives*: its prompt (the mean
of an ensemble's embeddings) versus the best of a contrast set — its own negative prompts plus a
shared set of generic background sounds. The score is

    sigmoid(scale * (cos(audio, prompt) - max_j cos(audio, contrast_j)))

so 0.5 means "the prompt describes this audio exactly as well as the best alternative", on every
predicate alike; `scale` is the model's learned logit scale. Background prompts that say nearly the
same thing as the predicate (text cosine above `SIMILAR_COS`) are left out of its contrast set, so
"footsteps" as a predicate does not compete with "footsteps" as background.

Calibration may add audio prototypes (mean embeddings of positive and negative example windows);
their score `sigmoid(scale_p * (cos(a, pos) - cos(a, neg)))` is blended in with its weight.

Pooling (per predicate, `pooling` in its config): with part embeddings (~1-s stretches of the
window) the window's score is `max` over the whole and its parts (a short event scores in the part
it fills instead of being averaged away), the `mean` of the parts, or the `whole` window's alone.

Prompt embeddings are computed once, in one batch, then the model's text tower is released. A
predicate's prompts and contrasts are embedded in one head mix, its first prompt's (matters for
gated text heads: `projection.TextGate`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..protocol import InferenceModel, unit
from .config import PredicateConfig, PredicateSetConfig

SIMILAR_COS = 0.9  # background prompts this close to a predicate's prompt are not its contrast


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass
class _PredicateVectors:
    prompt: np.ndarray  # [d], unit
    contrast: np.ndarray  # [k, d], unit rows
    proto_pos: np.ndarray | None
    proto_neg: np.ndarray | None
    proto_weight: float
    proto_scale: float


class PromptScorer:
    """Cached text vectors for one predicate set; scores batches of audio embeddings."""

    def __init__(self, model: InferenceModel, cfg: PredicateSetConfig) -> None:
        self.names = cfg.names
        self.poolings = [p.pooling for p in cfg.predicates]
        self.scale = float(model.logit_scale)  # exp already applied and capped (protocol.py)
        self.template = cfg.template or model.template
        pairs = self._all_pairs(cfg)
        emb = np.asarray(model.embed_text([self.template.format(t) for t, _ in pairs],
                                          [self.template.format(m) for _, m in pairs]))
        table = dict(zip(pairs, unit(emb.astype(np.float64))))
        self.dim = len(next(iter(table.values())))
        self._vectors = [self._predicate_vectors(p, table, cfg.background, model.name) for p in cfg.predicates]

    @staticmethod
    def _all_pairs(cfg: PredicateSetConfig) -> list[tuple[str, str]]:
        """(text, mix) for every text a predicate compares: all of them in its first prompt's head
        mix (`InferenceModel.embed_text`), so a gated model never scores a prompt in one mix
        against contrasts in another."""
        seen: dict[tuple[str, str], None] = {}
        for p in cfg.predicates:
            for t in (*p.prompts, *p.negatives, *cfg.background):
                seen.setdefault((t, p.prompts[0]), None)
        return list(seen)

    def _predicate_vectors(self, p: PredicateConfig, table: dict[tuple[str, str], np.ndarray],
                           background_texts: tuple[str, ...], weights_name: str | None) -> _PredicateVectors:
        mix = p.prompts[0]
        prompt = unit(np.mean([table[t, mix] for t in p.prompts], axis=0))
        background = (np.stack([table[t, mix] for t in background_texts]) if background_texts
                      else np.zeros((0, self.dim)))
        keep = background[background @ prompt < SIMILAR_COS] if len(background) else background
        negs = np.stack([table[t, mix] for t in p.negatives]) if p.negatives else np.zeros((0, self.dim))
        contrast = np.concatenate([negs, keep])
        pos = neg = None
        weight, pscale = 0.0, 0.0
        if p.prototypes is not None:
            pr = p.prototypes
            if len(pr.positive) != self.dim:
                raise ConfigError(f"predicates.{p.name}.prototypes.positive: {len(pr.positive)} values but the "
                                  f"model's embeddings have {self.dim}; re-run clap-predicates calibrate with "
                                  "these weights")
            if pr.model and weights_name and pr.model != weights_name:
                raise ConfigError(f"predicates.{p.name}.prototypes.model: computed with '{pr.model}' but the "
                                  f"model is '{weights_name}'; re-run clap-predicates calibrate")
            pos = unit(np.asarray(pr.positive, dtype=np.float64))
            neg = unit(np.asarray(pr.negative, dtype=np.float64)) if pr.negative is not None else None
            weight, pscale = pr.weight, pr.scale
        return _PredicateVectors(prompt, contrast, pos, neg, weight, pscale)

    def prompt_margins(self, audio_emb: np.ndarray) -> np.ndarray:
        """cos(prompt) - max cos(contrast), [B, P]: the quantity the prompt score is a sigmoid of."""
        a = unit(np.asarray(audio_emb, dtype=np.float64))
        out = np.empty((len(a), len(self._vectors)))
        for i, v in enumerate(self._vectors):
            best = (a @ v.contrast.T).max(axis=1) if len(v.contrast) else np.zeros(len(a))
            out[:, i] = a @ v.prompt - best
        return out

    def score(self, audio_emb: np.ndarray) -> np.ndarray:
        """Scores in [0, 1], [B, P], for audio embeddings [B, d] (normalised here)."""
        a = unit(np.asarray(audio_emb, dtype=np.float64))
        scores = sigmoid(self.scale * self.prompt_margins(a))
        for i, v in enumerate(self._vectors):
            if v.proto_pos is None:
                continue
            ref = a @ v.proto_neg if v.proto_neg is not None else 0.5
            proto = sigmoid(v.proto_scale * (a @ v.proto_pos - ref))
            scores[:, i] = (1.0 - v.proto_weight) * scores[:, i] + v.proto_weight * proto
        return scores.astype(np.float32)

    @property
    def needs_parts(self) -> bool:
        return any(mode != "whole" for mode in self.poolings)

    def pooled(self, whole: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whole `[B, d]` and parts `[B, K, d]` embeddings → (pooled scores `[B, P]`, index of each
        predicate's best-scoring part `[B, P]`, the part the evidence lies in)."""
        b, k, d = parts.shape
        s_whole = self.score(whole)
        s_parts = self.score(parts.reshape(b * k, d)).reshape(b, k, -1)
        out = s_whole.copy()
        for i, mode in enumerate(self.poolings):
            out[:, i] = pool(s_whole[:, i], s_parts[:, :, i], mode)
        return out, s_parts.argmax(axis=1)


def pool(whole: np.ndarray, parts: np.ndarray, mode: str) -> np.ndarray:
    """One predicate's window scores `[B]` from its whole-window `[B]` and part `[B, K]` scores."""
    if mode == "max":
        return np.maximum(whole, parts.max(axis=1))
    if mode == "mean":
        return parts.mean(axis=1)
    return whole
