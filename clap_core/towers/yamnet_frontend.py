"""YAMNet's log-Mel front end in torch, bit-for-bit in spirit with the TensorFlow original.

YAMNet only recognises sounds when its input matches what it was trained on: 16 kHz mono,
400-sample periodic Hann frames in a 512-point FFT, hop 160, magnitude spectrum, 64 HTK-mel
bands 125–7500 Hz (TensorFlow's triangle construction, DC bin zeroed), `log(mel + 0.001)`,
96-frame patches. Any deviation (other log offset, zero-padded log-mels) makes it answer
"Speech"/"Silence" for everything, so every constant lives here and nowhere else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..precision import full_precision

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class FrontendConfig:
    """The constants of YAMNet's features; `patch_hop_frames` is the only one meant to change
    (48 = YAMNet's 0.48 s; 96 = non-overlapping patches, half the compute)."""

    window_samples: int = 400
    hop_samples: int = 160
    fft_size: int = 512
    mel_bands: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    log_offset: float = 0.001
    patch_frames: int = 96
    patch_hop_frames: int = 48
    target_dbfs: float = -20.0
    peak_limit: float = 0.99
    silence_rms: float = 1e-5


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale, as TensorFlow's `linear_to_mel_weight_matrix` uses it."""
    return 1127.0 * torch.log1p(hz / 700.0)


def mel_matrix(cfg: FrontendConfig, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """`[fft_size//2 + 1, mel_bands]` triangles that are linear in mel, DC row zero (TF's layout)."""
    bins = cfg.fft_size // 2 + 1
    hz = torch.linspace(0.0, sample_rate / 2.0, bins, dtype=torch.float64)[1:]
    mel = _hz_to_mel(hz).unsqueeze(1)
    edges = torch.linspace(float(_hz_to_mel(torch.tensor(cfg.fmin, dtype=torch.float64))),
                           float(_hz_to_mel(torch.tensor(cfg.fmax, dtype=torch.float64))),
                           cfg.mel_bands + 2, dtype=torch.float64)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (mel - lower) / (center - lower)
    falling = (upper - mel) / (upper - center)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return torch.cat([torch.zeros(1, cfg.mel_bands, dtype=torch.float64), weights]).float()


def normalise_level(waveform: torch.Tensor, cfg: FrontendConfig) -> torch.Tensor:
    """Scale each row to `target_dbfs` RMS, then limit its peak.

    Robot microphones and recordings sit anywhere from −66 to −19 dBFS; YAMNet hears quiet input
    as "Silence". Normalising the level roughly doubles zero-shot accuracy (FIELD_NOTES). Rows
    that are digital silence stay silent rather than being amplified noise.
    """
    rms = waveform.pow(2).mean(dim=-1, keepdim=True).sqrt()
    gain = (10.0 ** (cfg.target_dbfs / 20.0)) / rms.clamp_min(cfg.silence_rms)
    gain = torch.where(rms > cfg.silence_rms, gain, torch.ones_like(gain))
    peak = (waveform.abs().amax(dim=-1, keepdim=True) * gain).clamp_min(1e-12)
    gain = gain * torch.clamp(cfg.peak_limit / peak, max=1.0)
    return waveform * gain


class YamnetFrontend(nn.Module):
    """waveform `[B, T]` at 16 kHz → log-Mel patches `[B, P, 96, 64]`."""

    def __init__(self, cfg: FrontendConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or FrontendConfig()
        n = self.cfg.window_samples
        window = 0.5 - 0.5 * torch.cos(2.0 * math.pi * torch.arange(n, dtype=torch.float64) / n)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("mel", mel_matrix(self.cfg), persistent=False)

    def min_samples(self) -> int:
        """Shortest waveform that yields one full patch."""
        c = self.cfg
        return (c.patch_frames - 1) * c.hop_samples + c.window_samples

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """`[B, T]` → `[B, frames, 64]`; frames start at sample 0 (no centring, like TF)."""
        c = self.cfg
        frames = waveform.unfold(-1, c.window_samples, c.hop_samples) * self.window
        magnitude = torch.fft.rfft(frames, n=c.fft_size).abs()
        return torch.log(magnitude @ self.mel + c.log_offset)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        waveform = normalise_level(waveform.float(), c)
        short = self.min_samples() - waveform.shape[-1]
        if short > 0:  # pad the waveform, never the log-mel: zero log-mel reads as a loud flat frame
            waveform = nn.functional.pad(waveform, (0, short))
        with full_precision(waveform.device):  # fp32 whatever the model's precision (clap_core.precision)
            spec = self.log_mel(waveform)
        return spec.unfold(1, c.patch_frames, c.patch_hop_frames).transpose(2, 3).contiguous()
