"""The two small interfaces every tower implements, so towers plug into `ClapModel` freely."""
from __future__ import annotations

import torch
from torch import nn


class AudioTower(nn.Module):
    """waveform → vector. Takes mono float32 audio `[batch, samples]` at `self.sample_rate`.

    The feature front end (STFT, Mel, log) lives inside the tower, so callers only ever
    handle raw waveforms.
    """

    sample_rate: int
    out_dim: int

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class TextTower(nn.Module):
    """strings → vector. Tokenisation lives inside the tower."""

    out_dim: int

    def forward(self, texts: list[str]) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError
