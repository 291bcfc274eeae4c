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
from ..parts import part_spans
from .base import AudioTower
from .logmel import LogMelFrontEnd

DEFAULT_CHANNELS = (64, 128, 256, 512, 1024, 2048)


class FoldedConv:
    """3×3 conv → BatchNorm (eval statistics) → ReLU as one operation, for inference only.

    The BN is folded into the conv's weights and bias, and the weights are pre-packed once into
    oneDNN's blocked layout instead of being re-laid out on every call. The late layers (maps only
    2–4 Mel bins wide, weights huge) run as three packed matrix products instead, one per kernel
    column (`_by_kernel_column`): about twice as fast as oneDNN's direct convolution there, and the
    products with the zero padding beside such narrow maps (a third of the work at 2 bins) are
    never formed.
    """

    # Measured at 44.1 kHz, 5-s clips: direct conv wins on 8-bin maps (512→512: 6.3 vs 7.5 ms),
    # kernel columns on 4- and 2-bin maps (1024→1024 on 43×4: 6.8 vs 24 ms).
    COLUMNS_MIN_CHANNELS = 512
    COLUMNS_MAX_WIDTH = 4

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, width: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        """`width`: the number of Mel bins the layer's input maps will have, when known; `dtype`:
        what the weights are packed in and the layer computes in (its input must be that dtype)."""
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        weight = (conv.weight * scale[:, None, None, None]).to(dtype)  # folded in fp32, then rounded once
        self.bias = (bn.bias - bn.running_mean * scale).to(dtype).contiguous()
        self.out_channels = weight.shape[0]
        self.width = width
        onednn = _ONEDNN and weight.device.type == "cpu"
        self.mode = "dense"
        if (onednn and weight.shape[1] >= self.COLUMNS_MIN_CHANNELS and width is not None
                and width <= self.COLUMNS_MAX_WIDTH):
            self.mode = "columns"  # matrix k holds kernel column k: rows (kh, c_in)
            per_column = weight.permute(3, 0, 2, 1).reshape(3, weight.shape[0], -1)
            del weight  # only one copy of the big matrices at a time
            self.weight = [torch.ops.mkldnn._reorder_linear_weight(per_column[k].contiguous(), 1) for k in range(3)]
            return
        if onednn:
            self.mode = "conv"
            shape = [1, weight.shape[1], 64, 64]  # any shape works; it only guides the layout choice
            weight = torch._C._nn.mkldnn_reorder_conv2d_weight(
                weight.contiguous(memory_format=torch.channels_last).to_mkldnn(), [1, 1], [1, 1], [1, 1], 1, shape)
        self.weight = weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "conv":
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
        if self.mode == "columns":
            return self._by_kernel_column(x)
        return F.relu(F.conv2d(x, self.weight, self.bias, padding=1))

    def _by_kernel_column(self, x: torch.Tensor) -> torch.Tensor:
        """Output bin w = Σ_k x[w + k − 1] · W_k over the kernel columns k that land inside the map.

        The input is unfolded over time only (3 taps), bin-major, so every term is one matrix
        product over a contiguous block of rows: the centre column for all bins, the left column
        for bins 1…W−1 (from bins 0…W−2), the right column for bins 0…W−2 (from bins 1…W−1).
        """
        batch, _, height, width = x.shape
        if width != self.width:
            raise ClapError(f"this CNN14 layer was built for {self.width} Mel bins at its input, got {width}")
        linear = torch.ops.mkldnn._linear_pointwise
        rows = batch * height
        padded = F.pad(x, (0, 0, 1, 1)).permute(0, 2, 3, 1)  # time padding only: [B, H+2, W, C]
        cols = padded.unfold(1, 3, 1).permute(2, 0, 1, 4, 3).reshape(width, rows, -1)  # [bin, B·H, (kh, C)]
        left, centre, right = self.weight
        out = linear(cols.reshape(width * rows, -1), centre, self.bias, "none", [], "").view(width, rows, -1)
        if width > 1:
            inner = width - 1
            later = linear.binary(cols[:-1].reshape(inner * rows, -1), out[1:].reshape(inner * rows, -1), left,
                                  None, "add").view(inner, rows, -1)  # bins 1…W−1, left column added
            out = torch.cat([out[:1], later])
            earlier = linear.binary(cols[1:].reshape(inner * rows, -1), out[:-1].reshape(inner * rows, -1), right,
                                    None, "add").view(inner, rows, -1)  # bins 0…W−2, right column added
            out = torch.cat([earlier, out[-1:]])
        return out.relu_().view(width, batch, height, -1).permute(1, 3, 2, 0)


def _onednn_usable() -> bool:
    """oneDNN's fused conv/matmul + ReLU with pre-packed weights (what torch.compile uses on CPU)."""
    return (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
            and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and hasattr(torch.ops.mkldnn._linear_pointwise, "binary")
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
        self.mel_bins = mel_bins
        self.frontend = LogMelFrontEnd(sample_rate, window_size, hop_size, mel_bins, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        widths = (1, *channels)
        for i in range(6):
            self.add_module(f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(channels[-1], out_dim)
        # AudioSet tagging head: unused for embeddings, kept so published weights load completely.
        self.fc_audioset = nn.Linear(out_dim, classes_num) if classes_num > 0 else None
        self._folded: list[tuple[FoldedConv, FoldedConv]] | None = None
        self.inference_dtype = torch.float32  # the folded convs' dtype (`set_inference_dtype`)
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
            for i, block in enumerate(self._blocks()):
                folded.append(self._fold(block, i))
                for name in ("conv1", "conv2", "bn1", "bn2"):
                    delattr(block, name)
        self._folded = folded
        self.fc_audioset = None
        self.compacted = True

    def set_inference_dtype(self, dtype: torch.dtype) -> None:
        """The packed convs are oneDNN calls autocast does not see: fold them in `dtype` instead."""
        if dtype != self.inference_dtype:
            self._drop_folded()
            self.inference_dtype = dtype

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .double(): the fused copies go stale
        self._drop_folded()
        return super()._apply(fn, *args, **kwargs)

    def _blocks(self) -> list[ConvBlock]:
        return [getattr(self, f"conv_block{i + 1}") for i in range(6)]

    def _fold(self, block: ConvBlock, index: int) -> tuple[FoldedConv, FoldedConv]:
        width = self.mel_bins // 2**index  # Mel bins left after `index` 2×2 poolings
        dtype = self.inference_dtype
        return FoldedConv(block.conv1, block.bn1, width, dtype), FoldedConv(block.conv2, block.bn2, width, dtype)

    def _folded_weights(self) -> list[tuple[FoldedConv, FoldedConv]]:
        if self._folded is None:
            with torch.no_grad():
                self._folded = [self._fold(b, i) for i, b in enumerate(self._blocks())]
        return self._folded

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self._head(self._time_features(waveform))

    def forward_parts(self, waveform: torch.Tensor, part_s: float,
                      part_hop_s: float) -> tuple[torch.Tensor, torch.Tensor, list[tuple[float, float]]]:
        """The conv blocks run once; each part pools its own stretch of the time axis with the same
        head (max + mean over time, then fc1), so the whole-window output is `forward`'s exactly.
        Parts are aligned to the final map's time cells (32 frames each); spans say where they lie."""
        feats = self._time_features(waveform)  # [B, C, cells]
        cell_s = 32 * self.frontend.hop_size / self.sample_rate
        duration = waveform.shape[-1] / self.sample_rate
        cells = feats.shape[-1]
        bounds = []
        for start, end in part_spans(duration, part_s, part_hop_s):
            a = min(cells - 1, int(round(start / cell_s)))
            bounds.append((a, min(cells, max(a + 1, int(round(end / cell_s))))))
        parts = torch.stack([self._head(feats[..., a:b]) for a, b in bounds], dim=1)
        spans = [(a * cell_s, min(duration, b * cell_s)) for a, b in bounds]
        return self._head(feats), parts, spans

    def _time_features(self, waveform: torch.Tensor) -> torch.Tensor:
        """Front end and conv blocks, averaged over Mel: `[B, 2048, time cells]`."""
        x = self.frontend(waveform)  # [B, frames, mel]
        x = self.bn0(x.transpose(1, 2)[..., None]).squeeze(-1).transpose(1, 2)  # BN per mel bin
        x = x[:, None]  # [B, 1, frames, mel]
        if self.compacted and torch.is_grad_enabled():
            raise ClapError("a compacted CNN14 tower only runs without autograd (inference)")
        if self.training or torch.is_grad_enabled() or torch.jit.is_tracing():  # tracing: ONNX export
            for i, block in enumerate(self._blocks()):
                x = F.dropout(block(x, (2, 2) if i < 5 else (1, 1)), p=0.2, training=self.training)
        else:
            x = self._inference_blocks(x.to(self.inference_dtype).contiguous(memory_format=torch.channels_last))
        return x.float().mean(dim=3)  # over mel

    def _head(self, x: torch.Tensor) -> torch.Tensor:
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
