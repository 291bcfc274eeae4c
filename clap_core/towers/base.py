"""The two small interfaces every tower implements, so towers plug into `ClapModel` freely."""
from __future__ import annotations

import torch
from torch import nn

from ..parts import Span, part_spans

class AudioTower(nn.Module):
    """waveform → vector. Takes mono float32 audio `[batch, samples]` at `self.sample_rate`.

    The feature front end (STFT, Mel, log) lives inside the tower, so callers only ever
    handle raw waveforms.
    """

    sample_rate: int
    out_dim: int
    compacted: bool = False  # set by towers whose `compact_for_inference` drops trainable weights

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def compact_for_inference(self) -> None:
        """Drop what inference does not need (towers that can override this); nothing by default."""

    def forward_parts(self, waveform: torch.Tensor, part_s: float,
                      part_hop_s: float) -> tuple[torch.Tensor, torch.Tensor, list[Span]]:
        """(whole `[B, F]`, parts `[B, P, F]`, spans in seconds from the window start), so a short
        event can be heard in the part it fills. Generic: cut the waveform and run `forward` on
        every part; towers that share work between parts override this."""
        b, t = waveform.shape
        spans = part_spans(t / self.sample_rate, part_s, part_hop_s)
        n = int(round(spans[0][1] * self.sample_rate)) if len(spans) > 1 else t
        cuts = [waveform[:, int(round(s * self.sample_rate)):][:, :n] for s, _ in spans]
        whole = self(waveform)
        if len(spans) == 1:
            return whole, whole[:, None], spans
        parts = self(torch.cat(cuts))  # part-major: [P·B, F]
        return whole, parts.reshape(len(spans), b, -1).transpose(0, 1), spans

    def set_inference_dtype(self, dtype: torch.dtype) -> None:
        """Towers whose inference kernels autocast cannot see (CNN14's pre-packed convolutions)
        convert their weights to `dtype` here; for every other tower autocast does it all."""


    def cache_patches(self, entries: int) -> bool:
        """Remember per-patch results across overlapping windows, where the tower's work splits
        into independent patches (YAMNet). Returns whether it does: a tower whose receptive field
        spans the window (CNN14, HTS-AT) has nothing to reuse exactly, so by default it does not."""
        return False


class TextTower(nn.Module):
    """strings → vector. Tokenisation lives inside the tower."""

    out_dim: int

    def forward(self, texts: list[str]) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError
