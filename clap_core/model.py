"""ClapModel: two towers, two projections and a learned temperature — the CLAP 2022 design."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .audio_io import resample, waveform_batch
from .config import DEFAULT_TEMPLATE, ModelConfig
from .errors import ClapError
from .losses import scaled_cosine
from .precision import autocast
from .projection import build_projection, text_gates
from .protocol import distinct
from .towers.base import AudioTower, TextTower
from .towers.registry import build_audio_tower, build_text_tower


class ClapModel(nn.Module):
    """Audio and text into one joint space, where cosine similarity says "this sound is that text"."""

    def __init__(self, config: ModelConfig, audio_tower: AudioTower, text_tower: TextTower) -> None:
        super().__init__()
        self.config = config
        self.audio_tower = audio_tower
        self.text_tower: TextTower | None = text_tower
        self.audio_projection = build_projection(config.audio_projection, "audio", audio_tower.out_dim,
                                                 config.embed_dim, config.projection_dropout)
        self.text_projection = build_projection(config.text_projection, "text", text_tower.out_dim,
                                                config.embed_dim, config.projection_dropout)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        # Rebuilds the text tower after `release_text_tower()`; set by the checkpoint loader.
        self.text_tower_loader: Callable[[], TextTower] | None = None
        # What embed_audio(_parts) run in (`clap_core.precision.apply_precision`); text and training stay fp32.
        self.inference_dtype = torch.float32

    # -- properties the rest of the project relies on -------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.audio_tower.sample_rate)

    @property
    def clip_seconds(self) -> float:
        return float(self.config.clip_seconds)

    @property
    def embed_dim(self) -> int:
        return int(self.config.embed_dim)

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    # -- embeddings -----------------------------------------------------------------------------
    def encode_audio(self, waveform: torch.Tensor) -> torch.Tensor:
        """Differentiable path for training: waveform at the model's rate → joint space."""
        return self.audio_projection(self.audio_tower(waveform))

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Differentiable path for training: strings → joint space."""
        return self.text_projection(self._text_tower()(list(texts)))

    def embed_audio(self, waveform: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """`[batch, samples]` mono float32 → `[batch, d]` joint-space embeddings, before L2 norm.

        Resamples when `sample_rate` differs from the model's. Runs without autograd.
        """
        batch = self._prepare_waveform(waveform, sample_rate)
        with torch.inference_mode(), autocast(self.device, self.inference_dtype):
            return self.encode_audio(batch).float()

    def embed_audio_parts(self, waveform: torch.Tensor | np.ndarray, sample_rate: int, part_s: float,
                          part_hop_s: float) -> tuple[torch.Tensor, torch.Tensor, list[tuple[float, float]]]:
        """Like `embed_audio`, plus `[batch, parts, d]` embeddings of ~`part_s` stretches and their
        (start, end) seconds from the window start: short events are heard in the part they fill."""
        batch = self._prepare_waveform(waveform, sample_rate)
        with torch.inference_mode(), autocast(self.device, self.inference_dtype):
            whole, parts, spans = self.audio_tower.forward_parts(batch, part_s, part_hop_s)
            return self.audio_projection(whole).float(), self.audio_projection(parts).float(), spans

    def embed_text(self, texts: Sequence[str], mixes: Sequence[str] | None = None) -> torch.Tensor:
        """`[n, d]` embeddings of the strings as given (no template added), before L2 norm.

        `mixes[i]`: the text whose gates (`projection.TextGate`) weigh the heads for `texts[i]`,
        so that texts compared with each other (a predicate's prompt and its contrasts) share one
        mix of heads; ignored by a projection without gates. Each distinct string is encoded once.
        """
        if isinstance(texts, str):
            raise TypeError("embed_text takes a list of strings, not one string")
        if mixes is not None and (isinstance(mixes, str) or len(mixes) != len(texts)):
            raise TypeError(f"embed_text: mixes must be a list as long as texts ({len(texts)})")
        if len(texts) == 0:
            return torch.empty(0, self.embed_dim, device=self.device)
        with torch.inference_mode():  # fp32 always: see clap_core.precision
            if mixes is None:
                return self.encode_text(texts)
            unique, rows = distinct([*texts, *mixes])
            features = self._text_tower()(unique)
            x = features[rows[:len(texts)]]
            if not text_gates(self.text_projection):
                return self.text_projection(x)
            return self.text_projection(x, gate_from=features[rows[len(texts):]])

    # -- scores -----------------------------------------------------------------------------------
    def similarity(self, audio_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """`[n_audio, n_text]`: exp(logit_scale) (clipped) × cosine similarity."""
        return scaled_cosine(audio_emb, text_emb, self.logit_scale.detach(), self.config.logit_scale_max)

    def classify(self, waveform: torch.Tensor | np.ndarray, sample_rate: int, labels: Sequence[str],
                 template: str = DEFAULT_TEMPLATE, multi_label: bool = False) -> torch.Tensor:
        """Zero-shot probabilities `[batch, n_labels]`: softmax (one-of-N) or sigmoid (multi-label)."""
        prompts = [template.format(label) for label in labels]
        logits = self.similarity(self.embed_audio(waveform, sample_rate), self.embed_text(prompts))
        return torch.sigmoid(logits) if multi_label else F.softmax(logits, dim=-1)

    def remember_training_texts(self, texts: Sequence[str], batch: int = 256) -> int:
        """Tell the text projection's gates (`projection.TextGate`) the texts its trained heads
        learn from, so those heads speak for texts like them; returns how many distinct texts were
        added (0 when the projection has no gate)."""
        gates = text_gates(self.text_projection)
        unique = sorted(set(texts))
        if not gates or not unique:
            return 0
        tower = self._text_tower()
        was_training = tower.training
        tower.eval()
        try:
            with torch.no_grad():
                features = torch.cat([tower(unique[i:i + batch]).float() for i in range(0, len(unique), batch)])
        finally:
            tower.train(was_training)
        for gate in gates:
            gate.remember(features)
        return len(unique)

    # -- memory -----------------------------------------------------------------------------------
    def cache_patches(self, entries: int) -> bool:
        """Let the audio tower reuse patch results across overlapping windows (0: off); see
        `AudioTower.cache_patches`. Returns whether the tower does."""
        return self.audio_tower.cache_patches(entries)

    def release_text_tower(self) -> bool:
        """Free the text encoder once prompt embeddings are cached (most of a BERT model's memory).

        `embed_text` still works afterwards: it rebuilds the tower from the same weights first.
        A model with no source to rebuild from (built in memory) keeps its tower; returns whether
        the tower was released.
        """
        if self.text_tower_loader is None:
            return False
        self.text_tower = None
        return True

    def compact_for_inference(self) -> None:
        """Free what inference does not need: the text tower (see `release_text_tower`) and, for
        towers that support it, trainable copies of weights already packed for fast inference.
        The model can no longer be trained, moved or saved afterwards."""
        self.release_text_tower()
        self.audio_tower.compact_for_inference()

    @property
    def compacted(self) -> bool:
        """Whether `compact_for_inference` dropped weights (such a model cannot be saved)."""
        return bool(self.audio_tower.compacted)

    def _text_tower(self) -> TextTower:
        if self.text_tower is None:
            if self.text_tower_loader is None:
                raise ClapError("the text tower was released and this model has no way to reload it")
            self.text_tower = self.text_tower_loader().to(self.device).eval()
        return self.text_tower

    def _prepare_waveform(self, waveform: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        if isinstance(waveform, np.ndarray):
            waveform = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
        waveform = waveform_batch(waveform.float())
        if int(sample_rate) != self.sample_rate:
            waveform = torch.from_numpy(resample(waveform.cpu().numpy(), int(sample_rate), self.sample_rate))
        return waveform.to(self.device)


def create_model(config: ModelConfig, text_tower: TextTower | None = None) -> ClapModel:
    """Build a model with the towers its config names (weights as the towers initialise them);
    `text_tower` replaces the configured one (the checkpoint loader's child-process stand-in)."""
    text = text_tower if text_tower is not None else build_text_tower(config.text)
    return ClapModel(config, build_audio_tower(config.audio), text).eval()
