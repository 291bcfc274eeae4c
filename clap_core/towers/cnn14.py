"""CNN14 (PANNs) audio tower: log-Mel → six conv blocks → 2048-d clip embedding.

Parameter names follow the PANNs layout so Microsoft's CLAP 2022 weights map one-to-one.
For inference (eval mode, no autograd) each conv → BatchNorm → ReLU runs as one fused oneDNN
operation with pre-packed weights (`FoldedConv`); training uses the plain modules.
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

DEFAULT_CHANNELS = (64, 128, 256, 512, 1024, 2048)


class FoldedConv:
    """3×3 conv → BatchNorm (eval statistics) → ReLU as one operation, for inference only.

    The BN is folded into the conv's weights and bias, and the weights are pre-packed once into
    oneDNN's blocked layout instead of being re-laid out on every call. Wide layers (the late
    blocks, where the maps are tiny and the weights huge) run as im2col + one packed matrix product,
    which oneDNN does about twice as fast as its direct convolution at these shapes.
    """

    GEMM_MIN_CHANNELS = 1024  # measured at 44.1 kHz: 512→512 on 86×8 maps is faster as a direct conv

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale[:, None, None, None]
        self.bias = (bn.bias - bn.running_mean * scale).contiguous()
        self.out_channels = weight.shape[0]
        onednn = _ONEDNN and weight.device.type == "cpu"
        self.mode = "dense"
        if onednn and weight.shape[1] >= self.GEMM_MIN_CHANNELS:
            self.mode = "gemm"  # rows of the matrix: (kh, kw, c_in), as im2col lays them out
            weight = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).contiguous()  # drops the NCHW copy
            weight = torch.ops.mkldnn._reorder_linear_weight(weight, 1)
        elif onednn:
            self.mode = "conv"
            shape = [1, weight.shape[1], 64, 64]  # any shape works; it only guides the layout choice
            weight = torch._C._nn.mkldnn_reorder_conv2d_weight(
                weight.contiguous(memory_format=torch.channels_last).to_mkldnn(), [1, 1], [1, 1], [1, 1], 1, shape)
        self.weight = weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "conv":
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
        if self.mode == "gemm":
            return self._gemm(x)
        return F.relu(F.conv2d(x, self.weight, self.bias, padding=1))

    def _gemm(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # [B, H+2, W+2, C]
        patches = padded.unfold(1, 3, 1).unfold(2, 3, 1)  # [B, H, W, C, 3, 3]
        cols = patches.permute(0, 1, 2, 4, 5, 3).reshape(batch * height * width, -1)
        out = torch.ops.mkldnn._linear_pointwise(cols, self.weight, self.bias, "relu", [], "")
        return out.reshape(batch, height, width, self.out_channels).permute(0, 3, 1, 2)


def _onednn_usable() -> bool:
    """oneDNN's fused conv/matmul + ReLU with pre-packed weights (what torch.compile uses on CPU)."""
    return (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
            and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
            and hasattr(torch._C._nn, "mkldnn_reorder_conv2d_weight"))


_ONEDNN = _onednn_usable()


class ConvBlock(nn.Module):
    """Two 3×3 conv + BN + ReLU layers, then 2-D average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: tuple[int, int],
                folded: tuple[FoldedConv, FoldedConv] | None = None) -> torch.Tensor:
        if folded is None:
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
        else:
            x = folded[1](folded[0](x))
        return F.avg_pool2d(x, pool) if pool != (1, 1) else x


class Cnn14Tower(AudioTower):
    """waveform `[B, T]` at `sample_rate` → embedding `[B, out_dim]` (the PANNs `embedding`)."""

    EARLY_BLOCKS = 5  # run clip by clip at inference (see `_inference_blocks`)

    def __init__(self, sample_rate: int, window_size: int = 1024, hop_size: int = 320,
                 mel_bins: int = 64, fmin: float = 50.0, fmax: float = 14000.0,
                 classes_num: int = 527, out_dim: int = 2048,
                 channels: tuple[int, ...] = DEFAULT_CHANNELS) -> None:
        super().__init__()
        if len(channels) != 6:
            raise ConfigError(f"audio.options.channels: CNN14 has 6 blocks, got {len(channels)} widths")
        self.sample_rate = sample_rate
        self.out_dim = out_dim
        self.frontend = LogMelFrontEnd(sample_rate, window_size, hop_size, mel_bins, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        widths = (1, *channels)
        for i in range(6):
            self.add_module(f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(channels[-1], out_dim)
        # AudioSet tagging head: unused for embeddings, kept so published weights load completely.
        self.fc_audioset = nn.Linear(out_dim, classes_num) if classes_num > 0 else None
        self._folded: list[tuple[FoldedConv, FoldedConv]] | None = None
        self.compacted = False
        self.register_load_state_dict_post_hook(lambda module, keys: module._drop_folded())

    def _drop_folded(self) -> None:
        if self.compacted:
            raise ClapError("this CNN14 tower was compacted for inference; load the model again to "
                            "train, move or save it")
        self._folded = None

    def train(self, mode: bool = True) -> "Cnn14Tower":
        if not (self.compacted and not mode):
            self._drop_folded()
        return super().train(mode)

    def compact_for_inference(self) -> None:
        """Keep only the fused, packed conv weights and drop the trainable ones (and the unused
        AudioSet head): about half the tower's memory, for robots that only run inference."""
        if self.compacted:
            return
        self.eval()
        folded = []
        with torch.no_grad():  # block by block, so only one block's weights exist twice at a time
            for block in self._blocks():
                folded.append((FoldedConv(block.conv1, block.bn1), FoldedConv(block.conv2, block.bn2)))
                for name in ("conv1", "conv2", "bn1", "bn2"):
                    delattr(block, name)
        self._folded = folded
        self.fc_audioset = None
        self.compacted = True

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .double(): the fused copies go stale
        self._drop_folded()
        return super()._apply(fn, *args, **kwargs)

    def _blocks(self) -> list[ConvBlock]:
        return [getattr(self, f"conv_block{i + 1}") for i in range(6)]

    def _folded_weights(self) -> list[tuple[FoldedConv, FoldedConv]]:
        if self._folded is None:
            with torch.no_grad():
                self._folded = [(FoldedConv(b.conv1, b.bn1), FoldedConv(b.conv2, b.bn2)) for b in self._blocks()]
        return self._folded

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = self.frontend(waveform)  # [B, frames, mel]
        x = self.bn0(x.transpose(1, 2)[..., None]).squeeze(-1).transpose(1, 2)  # BN per mel bin
        x = x[:, None]  # [B, 1, frames, mel]
        if self.compacted and torch.is_grad_enabled():
            raise ClapError("a compacted CNN14 tower only runs without autograd (inference)")
        if self.training or torch.is_grad_enabled():
            for i, block in enumerate(self._blocks()):
                x = F.dropout(block(x, (2, 2) if i < 5 else (1, 1)), p=0.2, training=self.training)
        else:
            x = self._inference_blocks(x.contiguous(memory_format=torch.channels_last))
        x = x.mean(dim=3)  # over mel
        x = x.amax(dim=2) + x.mean(dim=2)  # over time
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu(self.fc1(x))
        return F.dropout(x, p=0.5, training=self.training)


    def _inference_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """The six blocks with fused weights. The early blocks (large maps, few channels) run one
        clip at a time so that each clip's maps stay in cache — about twice the FLOP rate of a
        whole batch here; the late blocks (tiny maps, huge weights) run on the whole batch so
        that each weight is read once per batch."""
        folded, blocks = self._folded_weights(), self._blocks()
        early = self.EARLY_BLOCKS

        def head(clip: torch.Tensor) -> torch.Tensor:
            for i in range(early):
                clip = blocks[i](clip, (2, 2), folded[i])
            return clip

        x = torch.cat([head(x[i : i + 1]) for i in range(x.shape[0])]) if x.shape[0] > 1 else head(x)
        for i in range(early, 6):
            x = blocks[i](x, (2, 2) if i < 5 else (1, 1), folded[i])
        return x


def build(cfg: AudioTowerConfig) -> Cnn14Tower:
    options: dict[str, Any] = dict(cfg.options)
    if "channels" in options:
        options["channels"] = tuple(options["channels"])
    try:
        return Cnn14Tower(sample_rate=cfg.sample_rate, **options)
    except TypeError as exc:
        raise ConfigError(f"audio.options: {exc}") from None
