"""HTS-AT audio tower (Swin-Transformer on log-Mel "images"), the MS-CLAP 2023 audio encoder.

Parameter and buffer names follow the published HTS-AT layout, so MS-CLAP 2023 weights map one
to one (`clap_core.msclap_2023`). The settings are the 2023 ones: its front end builds the Mel
filterbank for 32 kHz although the waveform arrives at 44.1 kHz — a quirk of the published model
that the weights were trained with, kept exactly. The clip embedding is the mean of the last
stage's normalised tokens (HTS-AT's "latent output"); the token-semantic head (`tscam_conv`,
`head`) is kept only so that checkpoints load and export whole.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AudioTowerConfig
from ..errors import ClapError, ConfigError
from .base import AudioTower
from .logmel import LogMelFrontEnd


def window_grid(x: torch.Tensor, size: int) -> torch.Tensor:
    """`[B, H, W, C]` → `[B·nW, size², C]`, windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // size, size, w // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size * size, c)


def grid_from_windows(windows: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `window_grid`."""
    c = windows.shape[-1]
    x = windows.view(-1, h // size, w // size, size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_index(size: int) -> torch.Tensor:
    """For each pair of positions in a window, the row of the relative-position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (size - 1)
    return rel[..., 0] * (2 * size - 1) + rel[..., 1]


def shift_mask(resolution: int, size: int, shift: int) -> torch.Tensor:
    """`[nW, size², size²]`: −100 between tokens that a cyclic shift brought from different regions."""
    regions = torch.zeros(1, resolution, resolution, 1)
    bounds = (slice(0, -size), slice(-size, -shift), slice(-shift, None))
    for n, (hs, ws) in enumerate((hs, ws) for hs in bounds for ws in bounds):
        regions[:, hs, ws, :] = n
    labels = window_grid(regions, size).squeeze(-1)
    diff = labels[:, None, :] - labels[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))


class WindowAttention(nn.Module):
    def __init__(self, dim: int, size: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * size - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_index(size))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.flatten()]
        bias = bias.view(n, n, -1).permute(2, 0, 1)[None]  # [1, heads, n, n]
        if mask is not None:  # [nW, n, n] per window, repeated over the batch
            n_windows = mask.shape[0]
            bias = (bias + mask[:, None]).repeat(bw // n_windows, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """(Shifted-)window attention and an MLP, each with a pre-norm residual."""

    def __init__(self, dim: int, resolution: int, heads: int, size: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        if resolution <= size:  # one window covers the map: no partition, no shift
            size, shift = resolution, 0
        self.resolution, self.size, self.shift = resolution, size, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, size, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.attn_mask: torch.Tensor | None
        self.register_buffer("attn_mask", shift_mask(resolution, size, shift) if shift else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        r, s = self.resolution, self.shift
        grid = self.norm1(x).view(b, r, r, c)
        if s:
            grid = torch.roll(grid, shifts=(-s, -s), dims=(1, 2))
        attended = self.attn(window_grid(grid, self.size), self.attn_mask)
        grid = grid_from_windows(attended, self.size, r, r)
        if s:
            grid = torch.roll(grid, shifts=(s, s), dims=(1, 2))
        x = x + grid.reshape(b, r * r, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2×2 neighbouring tokens → one token of twice the width."""

    def __init__(self, dim: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        g = x.view(b, self.resolution, self.resolution, c)
        g = torch.cat([g[:, 0::2, 0::2], g[:, 1::2, 0::2], g[:, 0::2, 1::2], g[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(g.view(b, -1, 4 * c)))


class Stage(nn.Module):
    def __init__(self, dim: int, resolution: int, depth: int, heads: int, size: int, mlp_ratio: float,
                 merge: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SwinBlock(dim, resolution, heads, size, 0 if i % 2 == 0 else size // 2,
                                              mlp_ratio) for i in range(depth))
        self.downsample = PatchMerging(dim, resolution) if merge else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class HtsatTower(AudioTower):
    """waveform → 768-d clip embedding (HTS-AT latent output)."""

    # HTS-AT's fixed evaluation crops for inputs longer than its 1024-frame image (published code).
    CROP_FRAMES = 689
    CROP_HOP = 344

    def __init__(self, sample_rate: int = 44100, filterbank_rate: int = 32000, window_size: int = 1024,
                 hop_size: int = 320, mel_bins: int = 64, fmin: float = 50.0, fmax: float = 14000.0,
                 spec_size: int = 256, patch_size: int = 4, embed_dim: int = 96,
                 depths: tuple[int, ...] = (2, 2, 6, 2), num_heads: tuple[int, ...] = (4, 8, 16, 32),
                 window: int = 8, mlp_ratio: float = 4.0, classes_num: int = 527) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.frontend = LogMelFrontEnd(filterbank_rate, window_size, hop_size, mel_bins, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        self.spec_size, self.freq_ratio = spec_size, spec_size // mel_bins
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        resolution = spec_size // patch_size
        self.layers = nn.ModuleList(
            Stage(embed_dim * 2 ** i, resolution // 2 ** i, depth, num_heads[i], window, mlp_ratio,
                  merge=i < len(depths) - 1) for i, depth in enumerate(depths))
        self.out_dim = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.out_dim)
        final = spec_size // 2 ** (len(depths) - 1) // patch_size // self.freq_ratio
        self.tscam_conv = nn.Conv2d(self.out_dim, classes_num, kernel_size=(final, 3), padding=(0, 1))
        self.head = nn.Linear(classes_num, classes_num)

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """`[B, 1, frames, mel]` after the front end and the input BatchNorm."""
        mel = self.frontend(waveform)  # [B, frames, mel]
        return self.bn0(mel.transpose(1, 2)[:, :, None]).squeeze(2).transpose(1, 2)[:, None]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        spec = self.features(waveform)
        frames = spec.shape[2]
        if frames <= self.freq_ratio * self.spec_size:
            return self.embed_image(self.to_image(spec))
        if self.training:
            raise ClapError(f"HTS-AT trains on at most {self.freq_ratio * self.spec_size} frames; "
                            f"got {frames} (cut the training clips to the model's clip length)")
        starts = range(0, frames - self.CROP_FRAMES - 1, self.CROP_HOP)
        crops = [self.embed_image(self.to_image(spec[:, :, s:s + self.CROP_FRAMES])) for s in starts]
        return torch.stack(crops).mean(0)

    def to_image(self, spec: torch.Tensor) -> torch.Tensor:
        """`[B, 1, T, 64]` → `[B, 1, 256, 256]`: time stretched to 1024 frames (bicubic), then cut
        into four 256-frame strips stacked along the frequency axis."""
        b, _, t, f = spec.shape
        target_t = self.freq_ratio * self.spec_size
        if t < target_t:
            spec = F.interpolate(spec, (target_t, f), mode="bicubic", align_corners=True)
        x = spec.permute(0, 1, 3, 2).reshape(b, 1, f, self.freq_ratio, self.spec_size)
        return x.permute(0, 1, 3, 2, 4).reshape(b, 1, self.freq_ratio * f, self.spec_size)

    def embed_image(self, image: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(image)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).mean(dim=1)


def build(cfg: AudioTowerConfig) -> HtsatTower:
    options: dict[str, Any] = dict(cfg.options)
    for key in ("depths", "num_heads"):
        if key in options:
            options[key] = tuple(options[key])
    try:
        return HtsatTower(sample_rate=cfg.sample_rate, **options)
    except TypeError as exc:
        raise ConfigError(f"audio.options: {exc}") from None
