"""The training run: set-up, the epoch loop, best-model tracking, checkpoints and exact resume.

One code path for CPU, one GPU (mixed precision) and several GPUs under `torchrun` (DDP): the
process group is set up from torchrun's environment variables when they are present
(distributed.py). The step and epoch are in train_step.py, validation in evaluate.py, the run
folder's state in run_state.py.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .config import TrainConfig
from .data_setup import build_data, read_manifests, train_loader
from .distributed import Runtime, barrier, setup_runtime, teardown_runtime
from .evaluate import Evaluator
from .model_setup import build_model, param_groups, set_trainable
from .precision import Precision
from .run_log import RunLog
from .run_state import STATE_FILE, Resumable, TrainState, save_run, write_config
from .train_step import TrainStep, contrastive_net, train_epoch


class Trainer:
    def __init__(self, config: TrainConfig, rt: Runtime, resume_dir: Optional[Path] = None) -> None:
        self.config = config
        self.rt = rt
        self.out = Path(config.train.output_dir)
        manifests = read_manifests(config)
        torch.manual_seed(config.train.seed)
        if resume_dir is not None:
            from clap_core import load_torch_model
            self.model = load_torch_model(resume_dir / "last")
        else:
            self.model = build_model(config)
            remembered = self.model.remember_training_texts(manifests.gate_texts)
            if remembered and rt.main:
                print(f"note: the text projection's gate remembers {remembered} texts", file=sys.stderr)
        self.model.to(rt.device)
        set_trainable(self.model, config)
        o = config.optim
        self.optimizer = torch.optim.Adam(param_groups(self.model, config), lr=o.lr, betas=o.betas,
                                          weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=o.plateau_factor, patience=o.plateau_patience, min_lr=o.min_lr)
        self.precision = Precision.choose(config.train.amp, rt.device)
        scaler = torch.amp.GradScaler("cuda", enabled=self.precision.scales_loss)
        self.resumable = Resumable(self.optimizer, self.scheduler, scaler)
        net: nn.Module = contrastive_net(self.model, rt)
        self.step = TrainStep(self.model, net, self.optimizer, scaler, self.precision, o.grad_clip)
        self.clip_seconds = config.data.clip_seconds or self.model.clip_seconds
        self.data = build_data(config, manifests, self.model.sample_rate, self.clip_seconds,
                               config.train.progress and rt.main)
        self.loader, self.sampler = train_loader(self.data.train, config, rt)
        self.evaluator = Evaluator(self.model, config, rt.device, self.precision, self.clip_seconds)
        self.state = TrainState()
        if resume_dir is not None:
            self.state = self.resumable.load(resume_dir / "last" / STATE_FILE)
        self.log = RunLog(self.out, tensorboard=config.train.tensorboard) if rt.main else None

    def evaluate(self) -> dict[str, float]:
        return self.evaluator(self.data)

    def train_epoch(self, epoch: int) -> float:
        return train_epoch(self.step, self.config, self.data.train, self.loader, self.sampler, self.rt, epoch)

    def fit(self) -> TrainState:
        """Run the remaining epochs (deterministic kernels on CPU when asked, restored afterwards)."""
        previous = torch.are_deterministic_algorithms_enabled()
        if self.rt.device.type == "cpu" and self.config.train.deterministic:
            torch.use_deterministic_algorithms(True)
        try:
            return self._fit()
        finally:
            torch.use_deterministic_algorithms(previous)

    def _fit(self) -> TrainState:
        t = self.config.train
        if self.rt.main:
            write_config(self.out, self.config)
        if t.eval_first and not self.state.history:  # where the run starts from: epoch 0
            start = time.perf_counter()
            self._record(0, float("nan"), self.evaluate(), start)
        for epoch in range(self.state.epoch, t.epochs):
            start = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            metrics = self.evaluate()
            self.scheduler.step(metrics["val_loss"])
            self.state.epoch = epoch + 1
            self._record(epoch + 1, train_loss, metrics, start)
        if self.log is not None:
            self.log.close()
        return self.state

    def _record(self, epoch: int, train_loss: float, metrics: dict[str, float], start: float) -> None:
        """History row, best tracking, checkpoints and logs for one finished epoch (0: before training)."""
        scale = self.model.logit_scale.detach().exp().clamp(max=self.model.config.logit_scale_max).item()
        row = {"epoch": epoch, "train_loss": train_loss, **metrics, "lr": self.optimizer.param_groups[0]["lr"],
               "temperature": 1.0 / scale, "seconds": time.perf_counter() - start}
        self.state.history.append(row)
        improved = self._is_better(row)
        if improved:
            self.state.best = self._score(row)
        if self.rt.main:
            save_run(self.out, self.model, self.resumable.state_dict(self.state, self.rt.world), improved,
                     self.state.history[-1])
            self.log.write(self.state.history)
            print(self.log.summary(row, improved), file=sys.stderr)
        barrier(self.rt)

    def _score(self, row: dict[str, float]) -> float:
        metric = self.config.train.best_metric
        if metric == "val_loss":
            return row["val_loss"]
        if metric == "recall":
            return -(row["a2t_r1"] + row["t2a_r1"]) / 2
        return -row["zeroshot_acc"]

    def _is_better(self, row: dict[str, float]) -> bool:
        score = self._score(row)
        return not math.isnan(score) and (self.state.best is None or score < self.state.best)


def run(config: TrainConfig, resume_dir: Optional[Path] = None) -> TrainState:
    """Train to config.train.epochs (continuing a run when resume_dir is given)."""
    rt = setup_runtime(config.train.device)
    try:
        return Trainer(config, rt, resume_dir).fit()
    finally:
        teardown_runtime(rt)
