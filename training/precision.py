"""Mixed precision: which autocast dtype a run uses (train.amp), shared by training and evaluation."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager, Optional

import torch

from clap_core.errors import ConfigError


@dataclass(frozen=True)
class Precision:
    """None: full float32; bfloat16 where the GPU has it, else float16 (which needs loss scaling)."""

    dtype: Optional[torch.dtype] = None

    @classmethod
    def choose(cls, setting: str, device: torch.device) -> "Precision":
        if setting == "off" or (setting == "auto" and device.type != "cuda"):
            return cls(None)
        if device.type != "cuda":
            raise ConfigError("train.amp: 'on' needs a CUDA device (mixed precision on CPU is not supported here)")
        return cls(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)

    @property
    def scales_loss(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self) -> ContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)
