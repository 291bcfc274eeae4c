"""One optimiser step on a contrastive batch, and one epoch of them."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from clap_core.losses import contrastive_loss

from .config import TrainConfig
from .data import ClipDataset
from .distributed import Runtime, mean_across_ranks
from .gather import gather_with_grad
from .model_setup import train_mode
from .precision import Precision


class ContrastiveStep(nn.Module):
    """Embeddings and loss in one forward(): DDP only tracks parameters (logit_scale included)
    used inside the forward of the module it wraps. Under DDP the loss is over the global batch
    (every rank's clips are negatives for every other's; see gather.py)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, waves: torch.Tensor, captions: list[str]) -> torch.Tensor:
        audio = gather_with_grad(self.model.encode_audio(waves))
        text = gather_with_grad(self.model.encode_text(captions))
        with torch.autocast(device_type=audio.device.type, enabled=False):  # the loss in float32
            return contrastive_loss(audio.float(), text.float(), self.model.logit_scale,
                                    self.model.config.logit_scale_max)


def contrastive_net(model: nn.Module, rt: Runtime) -> nn.Module:
    """The module the optimiser's loss comes from: DDP-wrapped when several ranks train."""
    net: nn.Module = ContrastiveStep(model)
    if rt.distributed:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
            find_unused_parameters=True)  # towers carry heads (e.g. AudioSet classifier) the loss never uses
    return net


@dataclass
class TrainStep:
    """Forward, (scaled) backward, optional gradient clip, update, and the paper's temperature cap."""

    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    precision: Precision
    grad_clip: Optional[float] = None

    def __call__(self, waves: torch.Tensor, captions: list[str]) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            loss = self.net(waves, captions)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with torch.no_grad():  # the paper's clip: the scale never exceeds logit_scale_max
            self.model.logit_scale.clamp_(max=math.log(self.model.config.logit_scale_max))
        return loss.item()


def train_epoch(step: TrainStep, config: TrainConfig, dataset: ClipDataset, loader: DataLoader,
                sampler: DistributedSampler, rt: Runtime, epoch: int) -> float:
    """Every batch of this rank's share once; the mean training loss over all ranks' clips."""
    from tqdm import tqdm

    train_mode(step.model, config)
    dataset.set_epoch(epoch)
    sampler.set_epoch(epoch)
    total, count = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.train.epochs}", file=sys.stderr,
               disable=not (config.train.progress and rt.main), leave=False)
    for waves, captions, _ in bar:
        if len(captions) < 2:
            continue  # a contrastive batch needs at least one negative
        loss = step(waves.to(rt.device, non_blocking=True), captions)
        total += loss * len(captions)
        count += len(captions)
        bar.set_postfix(loss=f"{loss:.4f}")
    return mean_across_ranks(total, count, rt)
