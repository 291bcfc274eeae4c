"""Projection heads into the joint space, chosen by a `ProjectionConfig` (one factory, one table).

- `mlp` (CLAP 2022): Linear → GELU → Linear → dropout, residual, LayerNorm.
- `label_space`: the joint space is AudioSet's label set. Audio side: the tower's class
  probabilities (a slice of its output). Text side: softmax over the labels of
  cos(text, label prompt) / τ, with the label prompts' embeddings stored in the checkpoint. No
  training: a text scores high where the audio tagger hears labels that mean the same.
- `fused`: several heads side by side, each output unit-normalised and scaled by √weight, so the
  cosine of two fused vectors is the weighted sum of the heads' cosines. On the text side a part
  may have a `gate` (`TextGate`): its weight then follows how like the texts it was trained on a
  text is, so a head trained on a few classes speaks only for texts like theirs.
All heads are row-wise (applied on the last axis), so they work on per-window and per-part features.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .config import ProjectionConfig
from .errors import ConfigError

KINDS = ("mlp", "label_space", "fused")


class Projection(nn.Module):
    """The CLAP 2022 head."""

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.out_dim = d_out
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.linear1(x)
        return self.layer_norm(first + self.drop(self.linear2(F.gelu(first))))


class AudioLabelSpace(nn.Module):
    """The tower's class probabilities `x[..., offset:offset + labels]`, as they are."""

    def __init__(self, d_in: int, labels: int, offset: int = 0) -> None:
        super().__init__()
        if offset + labels > d_in:
            raise ConfigError(f"audio projection: labels {offset}+{labels} exceed the tower's {d_in} outputs")
        self.offset, self.out_dim = int(offset), int(labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.offset:self.offset + self.out_dim]


class TextLabelSpace(nn.Module):
    """softmax over labels of cos(x, label_j) / tau; the unit label embeddings are a buffer."""

    def __init__(self, d_in: int, labels: int, tau: float = 0.05) -> None:
        super().__init__()
        if not tau > 0:
            raise ConfigError(f"text projection: tau must be positive, got {tau}")
        self.tau, self.out_dim = float(tau), int(labels)
        self.register_buffer("labels", torch.zeros(int(labels), d_in))  # filled by the checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(F.normalize(x, dim=-1) @ self.labels.T / self.tau, dim=-1)


class TextGate(nn.Module):
    """How much a trained head speaks for a text: 0 when the text's best cosine to the texts the
    head was trained on is at most `low`, 1 from `high` on, linear between.

    Why: trained on a few classes, a head pulls every prompt toward them; on classes held out of
    its training the v2 recipe's head lost to the untrained label space at every fixed weight
    (model card). Gated, a prompt unlike anything it learned gets the label space alone. The
    remembered texts (`remember`, unit tower features) are a buffer as long as the checkpoint has it
    (`size_gates_for`); with none remembered, or while training, the gate is open."""

    def __init__(self, d_in: int, low: float, high: float) -> None:
        super().__init__()
        if not 0.0 <= low < high <= 1.0:
            raise ConfigError(f"text projection gate: needs 0 <= low < high <= 1, got low {low}, high {high}")
        self.low, self.high = float(low), float(high)
        self.register_buffer("texts", torch.zeros(0, d_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[..., d_in]` tower features → `[..., 1]` weights in [0, 1]."""
        if self.training or len(self.texts) == 0:
            return torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
        best = (F.normalize(x, dim=-1) @ self.texts.to(x.dtype).T).amax(dim=-1, keepdim=True)
        return ((best - self.low) / (self.high - self.low)).clamp(0.0, 1.0)

    def remember(self, features: torch.Tensor) -> None:
        """Add texts the head was trained on (their tower features `[n, d_in]`)."""
        new = F.normalize(features.detach().to(self.texts.device, self.texts.dtype), dim=-1)
        self.texts = torch.cat([self.texts, new])

    def make_room(self, rows: int) -> None:
        """Size the buffer for a checkpoint that remembers `rows` texts (before a strict load)."""
        self.texts = self.texts.new_zeros(int(rows), self.texts.shape[1])


def size_gates_for(module: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Give every `TextGate` in `module` as many rows as `state` stores for it, so a strict load
    (`state_loading.strict_load`) checks the widths and loads the texts."""
    for name, gate in module.named_modules():
        stored = state.get(f"{name}.texts") if isinstance(gate, TextGate) else None
        if stored is not None and stored.ndim == 2:
            gate.make_room(stored.shape[0])


class Fused(nn.Module):
    """Heads side by side: `[√w_1 · unit(h_1(x)), √w_2 · unit(h_2(x)), …]`; a gated part's weight
    is `w_i · gate_i(x)` per row, and the weights are renormalised to sum to 1 per row."""

    def __init__(self, parts: list[nn.Module], weights: list[float],
                 gates: dict[int, TextGate] | None = None) -> None:
        super().__init__()
        if not parts or len(parts) != len(weights) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError("fused projection: needs parts with non-negative weights that sum to more than 0")
        gates = gates or {}
        if gates and not any(w > 0 for i, w in enumerate(weights) if i not in gates):
            raise ConfigError("fused projection: a gate needs an ungated part with a positive weight beside it")
        self.parts = nn.ModuleList(parts)
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self.scales = [math.sqrt(w) for w in self.weights]
        self.gates = nn.ModuleDict({str(i): g for i, g in gates.items()})
        self.out_dim = sum(int(p.out_dim) for p in parts)

    def forward(self, x: torch.Tensor, gate_from: torch.Tensor | None = None) -> torch.Tensor:
        """`gate_from` (same shape as `x`): the features whose gates set each row's head weights;
        default `x` itself. A predicate's contrasts take its prompt's mix this way, so that prompt
        and contrasts are compared in one space (`ClapModel.embed_text`'s `mixes`)."""
        units = [F.normalize(p(x), dim=-1) for p in self.parts]
        if not self.gates:
            return torch.cat([s * u for s, u in zip(self.scales, units)], dim=-1)
        g = x if gate_from is None else gate_from
        weights = [w * self.gates[str(i)](g) if str(i) in self.gates else torch.full_like(x[..., :1], w)
                   for i, w in enumerate(self.weights)]
        total = sum(weights)
        return torch.cat([torch.sqrt(w / total) * u for w, u in zip(weights, units)], dim=-1)


def build_projection(cfg: ProjectionConfig, side: str, d_in: int, d_out: int, dropout: float) -> nn.Module:
    """The head `cfg` describes, from `d_in` tower features to the `d_out`-wide joint space."""
    head = _build(cfg.kind, cfg.options, side, d_in, d_out, dropout, f"{side}_projection")
    if int(head.out_dim) != int(d_out):
        raise ConfigError(f"{side}_projection: gives {head.out_dim} values but embed_dim is {d_out}")
    return head


def _build(kind: str, options: Mapping[str, Any], side: str, d_in: int, d_out: int, dropout: float,
           where: str) -> nn.Module:
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: unknown projection '{kind}' (known: {', '.join(KINDS)})")
    try:
        if kind == "mlp":
            return Projection(d_in, int(options.get("dim", d_out)), dropout)
        if kind == "label_space":
            labels = int(options["labels"])
            if side == "audio":
                return AudioLabelSpace(d_in, labels, int(options.get("offset", 0)))
            return TextLabelSpace(d_in, labels, float(options.get("tau", 0.05)))
        parts = list(options["parts"])
        heads = [_build(p.get("kind", "mlp"), {**p.get("options", {}), **({"dim": p["dim"]} if "dim" in p else {})},
                        side, d_in, d_out, dropout, f"{where}.parts[{i}]") for i, p in enumerate(parts)]
        gates = {i: _gate(p["gate"], side, d_in, f"{where}.parts[{i}].gate")
                 for i, p in enumerate(parts) if p.get("gate") is not None}
        return Fused(heads, [float(p.get("weight", 1.0)) for p in parts], gates)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}.options: invalid for kind '{kind}' ({type(exc).__name__}: {exc})") from None


def _gate(spec: Any, side: str, d_in: int, where: str) -> TextGate:
    if side != "text":
        raise ConfigError(f"{where}: only text projections have gates")
    if not isinstance(spec, Mapping) or set(spec) != {"low", "high"}:
        raise ConfigError(f"{where}: expected {{low, high}} (cosines to the texts the head was trained on)")
    return TextGate(d_in, float(spec["low"]), float(spec["high"]))


def text_gates(projection: nn.Module) -> list[TextGate]:
    """The gates inside a (fused) text projection."""
    return [m for m in projection.modules() if isinstance(m, TextGate)]


def mlp_heads(projection: nn.Module) -> list[Projection]:
    """The trainable CLAP 2022 heads inside a projection (itself, or the parts of a fused one)."""
    if isinstance(projection, Projection):
        return [projection]
    if isinstance(projection, Fused):
        return [h for p in projection.parts for h in mlp_heads(p)]
    return []


def text_input_width(state: Mapping[str, torch.Tensor], prefix: str = "text_projection.") -> int | None:
    """The text tower's width as the stored text projection says (for a model whose text tower runs
    elsewhere): the input side of its first matrix or label bank; None if it holds neither."""
    for key in sorted(state):
        if key.startswith(prefix) and key.endswith(("linear1.weight", "labels")):
            return int(state[key].shape[1])
    return None
