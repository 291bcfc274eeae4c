"""The training loop: model set-up, epochs, evaluation, checkpoints and exact resume.

One code path for CPU, one GPU (mixed precision) and several GPUs under `torchrun` (DDP): the
process group is set up from torchrun's environment variables when they are present.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from clap_core.audio_io import clip_windows
from clap_core.errors import CheckpointError, ConfigError, ManifestError
from clap_core.losses import contrastive_loss
from clap_core.manifest import read_labelled_manifest

from . import data as D
from .config import TrainConfig, from_dict, check
from .gather import gather_with_grad
from .metrics import mean_normalised, retrieval_metrics, zeroshot_accuracy
from .run_log import RunLog

STATE_FILE = "train_state.pt"
CONFIG_FILE = "config.yaml"


# ---------------------------------------------------------------- processes and devices


@dataclass
class Runtime:
    """Where this process runs and which share of the data it sees."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup_runtime(device: str) -> Runtime:
    """Join the torchrun process group if launched by torchrun, and pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: '{device}' asked for but no CUDA device is available (use cpu or auto)")
    if device == "cuda":
        device = f"cuda:{local_rank}" if world > 1 else "cuda:0"
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend=backend)
    return Runtime(torch.device(device), rank, world, local_rank)


def teardown_runtime(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------- model


def build_model(config: TrainConfig):
    """The starting model: fine-tune named/loaded weights, or a fresh one from a model config."""
    from clap_core import load_torch_model
    from clap_core.config import ModelConfig
    from clap_core.model import create_model

    section = config.model
    if section.weights is not None:
        return load_torch_model(section.weights, device="cpu")
    spec = section.config
    if isinstance(spec, str):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"model.config: no such file {path}")
        try:
            spec = yaml.safe_load(path.read_text())  # JSON is YAML too
        except yaml.YAMLError as exc:
            raise ConfigError(f"model.config: {path} is not valid YAML/JSON ({exc})") from None
    try:
        model_config = ModelConfig.from_dict(spec)
    except TypeError as exc:
        raise ConfigError(f"model.config: {exc}") from None
    return create_model(model_config)


def set_trainable(model: nn.Module, config: TrainConfig) -> list[nn.Parameter]:
    """Freeze or unfreeze each part as configured; returns the parameters the optimiser updates."""
    s = config.model
    parts = {
        "audio_tower": (s.audio_tower, [model.audio_tower]),
        "text_tower": (s.text_tower, [model.text_tower]),
        "projections": (s.projections, [model.audio_projection, model.text_projection]),
    }
    for choice, modules in parts.values():
        for module in modules:
            for p in module.parameters():
                p.requires_grad_(choice == "trainable")
    model.logit_scale.requires_grad_(s.logit_scale == "trainable")
    for name in ("audio_tower", "text_tower"):
        tower = getattr(model, name)
        if getattr(s, name) == "trainable" and not list(tower.parameters()):
            print(f"note: model.{name}: {type(tower).__name__} has no trainable weights; it stays as it is",
                  file=sys.stderr)
    store_trained_towers(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("model: every part is frozen (or has no trainable weights); make one 'trainable'")
    return params


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Towers at optim.tower_lr (pretrained encoders usually want a smaller step), the rest at optim.lr."""
    tower_lr = config.optim.tower_lr or config.optim.lr
    towers = [p for m in (model.audio_tower, model.text_tower) for p in m.parameters() if p.requires_grad]
    ids = {id(p) for p in towers}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    return [g for g in ({"params": rest, "lr": config.optim.lr}, {"params": towers, "lr": tower_lr}) if g["params"]]


def store_trained_towers(model: nn.Module) -> None:
    """A tower whose weights normally come from an installed package is *stored* in checkpoints once
    it trains; otherwise reloading would silently bring back the package's untrained weights."""
    config = model.config
    for side in ("audio", "text"):
        tower = getattr(model, f"{side}_tower")
        section = getattr(config, side)
        if section.weights_from_package and any(p.requires_grad for p in tower.parameters()):
            config = dataclasses.replace(config, **{side: dataclasses.replace(section, weights_from_package=False)})
    model.config = config


def train_mode(model: nn.Module, config: TrainConfig) -> None:
    """Train mode for learning parts; frozen towers stay in eval mode (BatchNorm stats, dropout off)."""
    model.train()
    if config.model.audio_tower == "frozen":
        model.audio_tower.eval()
    if config.model.text_tower == "frozen":
        model.text_tower.eval()


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


# ---------------------------------------------------------------- data


@dataclass
class DataBundle:
    train: D.ClipDataset
    val: D.ClipDataset
    val_captions: list[str]
    val_relevance: torch.Tensor
    zeroshot: Optional[tuple[list[D.Clip], list[np.ndarray]]] = None


@dataclass
class Manifests:
    """Every clip list a run reads, parsed before any model is built (bad input fails in a second)."""

    train: list[D.Clip]
    val: list[D.Clip]
    zeroshot: Optional[list[D.Clip]]
    backgrounds: list[D.Clip]


def read_manifests(config: TrainConfig) -> Manifests:
    d = config.data
    clips = D.read_manifest(d.train, d.templates, d.audio_root)
    if d.val is not None:
        train, val = clips, D.read_manifest(d.val, d.templates, d.audio_root)
    else:
        train, val = D.split_clips(clips, d.val_fraction, config.train.seed)
    zeroshot = None
    if d.zeroshot is not None:
        zeroshot = [D.Clip(c.path, (), c.label) for c in read_labelled_manifest(d.zeroshot, d.audio_root)]
    backgrounds = []
    if config.augment.mix_prob > 0 and config.augment.background:
        backgrounds = [D.Clip(p, ("",)) for p in D.read_audio_list(config.augment.background)]
    return Manifests(train, val, zeroshot, backgrounds)


def build_data(config: TrainConfig, manifests: Manifests, sample_rate: int, clip_seconds: float,
               progress: bool) -> DataBundle:
    """Decode (or index) the audio at the model's rate and wrap it in datasets."""
    cache = config.data.cache_audio
    train_clips, train_waves = D.load_all(manifests.train, sample_rate, "training", progress, cache)
    val_clips, val_waves = D.load_all(manifests.val, sample_rate, "validation", progress, cache)
    for what, kept in (("training", train_clips), ("validation", val_clips)):
        if len(kept) < 2:
            raise ManifestError(f"{what} set: {len(kept)} usable clip(s); contrastive training and recall "
                                "need at least 2")
    backgrounds: Sequence[np.ndarray] = []
    if manifests.backgrounds:
        _, backgrounds = D.load_all(manifests.backgrounds, sample_rate, "background", progress, cache)
    train = D.ClipDataset(train_clips, train_waves, sample_rate, clip_seconds, train=True,
                          seed=config.train.seed, augment=config.augment, backgrounds=backgrounds)
    val = D.ClipDataset(val_clips, val_waves, sample_rate, clip_seconds, train=False)
    captions, rel = D.relevance(val_clips)
    zeroshot = None
    if manifests.zeroshot is not None:
        zeroshot = D.load_all(manifests.zeroshot, sample_rate, "zero-shot", progress)
    return DataBundle(train, val, captions, rel, zeroshot)


def train_loader(dataset: D.ClipDataset, config: TrainConfig, rt: Runtime) -> tuple[DataLoader, DistributedSampler]:
    """Per-rank shuffling through DistributedSampler (world 1 on a single process), seeded per epoch."""
    sampler = DistributedSampler(dataset, num_replicas=rt.world, rank=rt.rank, shuffle=True,
                                 seed=config.train.seed, drop_last=False)
    per_rank = math.ceil(len(dataset) / rt.world)
    batch = config.train.batch_size
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, collate_fn=D.collate,
                        num_workers=config.data.num_workers, drop_last=per_rank >= batch,
                        pin_memory=rt.device.type == "cuda")
    return loader, sampler


# ---------------------------------------------------------------- the trainer


@dataclass
class TrainState:
    """What a resumed run needs besides the model weights."""

    epoch: int = 0  # epochs completed
    best: Optional[float] = None
    history: list[dict[str, float]] = field(default_factory=list)


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
        self.model.to(rt.device)
        set_trainable(self.model, config)
        o = config.optim
        self.optimizer = torch.optim.Adam(param_groups(self.model, config), lr=o.lr, betas=o.betas,
                                          weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=o.plateau_factor, patience=o.plateau_patience, min_lr=o.min_lr)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.net: nn.Module = ContrastiveStep(self.model)
        if rt.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
                find_unused_parameters=True)  # towers carry heads (e.g. AudioSet classifier) the loss never uses
        self.clip_seconds = config.data.clip_seconds or self.model.clip_seconds
        self.data = build_data(config, manifests, self.model.sample_rate, self.clip_seconds,
                               config.train.progress and rt.main)
        self.loader, self.sampler = train_loader(self.data.train, config, rt)
        self.state = TrainState()
        if resume_dir is not None:
            self._load_state(resume_dir / "last" / STATE_FILE)
        self.log = RunLog(self.out, tensorboard=config.train.tensorboard) if rt.main else None

    # -- one epoch ------------------------------------------------------------------------------
    def _amp_dtype(self) -> Optional[torch.dtype]:
        setting = self.config.train.amp
        if setting == "off" or (setting == "auto" and self.rt.device.type != "cuda"):
            return None
        if self.rt.device.type != "cuda":
            raise ConfigError("train.amp: 'on' needs a CUDA device (mixed precision on CPU is not supported here)")
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def train_epoch(self, epoch: int) -> float:
        from tqdm import tqdm

        train_mode(self.model, self.config)
        self.data.train.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        total, count = 0.0, 0
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{self.config.train.epochs}", file=sys.stderr,
                   disable=not (self.config.train.progress and self.rt.main), leave=False)
        for waves, captions, _ in bar:
            if len(captions) < 2:
                continue  # a contrastive batch needs at least one negative
            loss = self.step(waves.to(self.rt.device, non_blocking=True), captions)
            total += loss * len(captions)
            count += len(captions)
            bar.set_postfix(loss=f"{loss:.4f}")
        return self._mean_across_ranks(total, count)

    def step(self, waves: torch.Tensor, captions: list[str]) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.net(waves, captions)
        self.scaler.scale(loss).backward()
        if self.config.optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with torch.no_grad():  # the paper's clip: the scale never exceeds logit_scale_max
            self.model.logit_scale.clamp_(max=math.log(self.model.config.logit_scale_max))
        return loss.item()

    def _mean_across_ranks(self, total: float, count: int) -> float:
        if self.rt.distributed:
            both = torch.tensor([total, float(count)], dtype=torch.float64, device=self.rt.device)
            dist.all_reduce(both)
            total, count = both[0].item(), int(both[1].item())
        return total / count if count else float("nan")

    # -- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss (fixed crops, first caption, fixed batches), retrieval both ways, zero-shot.

        Every rank computes the same numbers (so the LR schedule stays in step without a broadcast)."""
        self.model.eval()
        val = self.data.val
        audio = self._embed_audio(val[i][0] for i in range(len(val)))
        first = [val.clips[i].captions[0] for i in range(len(val))]
        metrics = {"val_loss": self._val_loss(audio, first)}
        text = self._embed_text(self.data.val_captions)
        sim = torch.nn.functional.normalize(audio, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
        metrics.update(retrieval_metrics(sim, self.data.val_relevance))
        if self.data.zeroshot is not None:
            metrics["zeroshot_acc"] = self._zeroshot(*self.data.zeroshot)
        return metrics

    def _embed_audio(self, waves: Iterable[torch.Tensor]) -> torch.Tensor:
        """Embeddings of fixed-length windows, stacked only `eval_batch_size` at a time (memory)."""
        out, chunk = [], []
        for wave in waves:
            chunk.append(wave)
            if len(chunk) == self.config.train.eval_batch_size:
                out.append(self._encode_chunk(chunk))
                chunk = []
        if chunk:
            out.append(self._encode_chunk(chunk))
        return torch.cat(out) if out else torch.empty(0, self.model.embed_dim)

    def _encode_chunk(self, chunk: list[torch.Tensor]) -> torch.Tensor:
        with self._autocast():
            return self.model.encode_audio(torch.stack(chunk).to(self.rt.device)).float().cpu()

    def _embed_text(self, texts: list[str]) -> torch.Tensor:
        out = []
        size = self.config.train.eval_batch_size
        for i in range(0, len(texts), size):
            with self._autocast():
                out.append(self.model.encode_text(texts[i:i + size]).float().cpu())
        return torch.cat(out) if out else torch.empty(0, self.model.embed_dim)

    def _val_loss(self, audio: torch.Tensor, captions: list[str]) -> float:
        """Mean loss over near-equal batches of about train.batch_size, in manifest order."""
        n = len(captions)
        if n < 2:
            return float("nan")
        chunks = np.array_split(np.arange(n), max(1, n // self.config.train.batch_size))
        total = 0.0
        scale = self.model.logit_scale.detach().cpu()
        for idx in chunks:
            text = self._embed_text([captions[i] for i in idx])
            total += contrastive_loss(audio[idx], text, scale, self.model.config.logit_scale_max).item() * len(idx)
        return total / n

    def _zeroshot(self, clips: list[D.Clip], waves: list[np.ndarray]) -> float:
        """Top-1 over the manifest's labels: prompts averaged over templates, windows over the clip."""
        classes = sorted({c.label for c in clips})
        templates = self.config.data.templates
        prompts = [t.format(c) for c in classes for t in templates]
        owners = [i // len(templates) for i in range(len(prompts))]
        text = mean_normalised(self._embed_text(prompts), owners, len(classes))
        owner: list[int] = []

        def windows() -> Iterator[torch.Tensor]:
            for i, wave in enumerate(waves):
                for window in clip_windows(wave, self.model.sample_rate, self.clip_seconds):
                    owner.append(i)
                    yield torch.from_numpy(np.ascontiguousarray(window))

        audio = mean_normalised(self._embed_audio(windows()), owner, len(waves))
        return zeroshot_accuracy(audio @ text.T, [classes.index(c.label) for c in clips])

    # -- the run ---------------------------------------------------------------------------------
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
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / CONFIG_FILE).write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))
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
            self._save(improved)
            self.log.write(self.state.history)
            print(self.log.summary(row, improved), file=sys.stderr)
        if self.rt.distributed:
            dist.barrier()

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

    # -- checkpoints -------------------------------------------------------------------------------
    def _save(self, improved: bool) -> None:
        from clap_core.checkpoints import save_checkpoint

        save_checkpoint(self.model, self.out / "last")
        torch.save(self._state_dict(), self.out / "last" / STATE_FILE)
        if improved:
            save_checkpoint(self.model, self.out / "best")
            (self.out / "best" / "metrics.json").write_text(json.dumps(self.state.history[-1], indent=2) + "\n")

    def _state_dict(self) -> dict[str, Any]:
        """Plain containers and tensors only, so it loads with torch.load(weights_only=True)."""
        return {
            "epoch": self.state.epoch,
            "world_size": self.rt.world,
            "best": self.state.best,
            "history": self.state.history,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def _load_state(self, path: Path) -> None:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no training state to resume from "
                                  "(was the run started by training/train.py?)") from None
        except Exception as exc:  # unpickling errors come in many types
            raise CheckpointError(f"{path}: unreadable training state ({str(exc)[:200]})") from None
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: optimiser state does not fit this model/config ({exc}); "
                                  "resume with the run's own config.yaml") from None
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.state = TrainState(epoch=int(state["epoch"]), best=state["best"], history=list(state["history"]))


def resume_config(run_dir: Path, overrides: list[str]) -> TrainConfig:
    """A run's own config.yaml with overrides (e.g. more epochs) applied; output stays in run_dir."""
    from .config import apply_override, read_yaml

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a training run folder (no {CONFIG_FILE}); "
                              "pass the train.output_dir of an earlier run")
    data = read_yaml(path)
    for item in overrides:
        apply_override(data, item)
    data.setdefault("train", {})["output_dir"] = str(run_dir)
    config = from_dict(TrainConfig, data, "")
    check(config)
    return config


def run(config: TrainConfig, resume_dir: Optional[Path] = None) -> TrainState:
    """Train to config.train.epochs (continuing a run when resume_dir is given)."""
    rt = setup_runtime(config.train.device)
    try:
        return Trainer(config, rt, resume_dir).fit()
    finally:
        teardown_runtime(rt)
