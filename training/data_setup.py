"""A run's data: every manifest it names, decoded at the model's rate, as datasets and a loader."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from clap_core.errors import ManifestError
from clap_core.manifest import read_labelled_manifest

from . import data as D
from . import manifests as M
from .config import TrainConfig
from .distributed import Runtime


@dataclass
class DataBundle:
    train: D.ClipDataset
    val: D.ClipDataset
    val_captions: list[str]
    val_relevance: torch.Tensor
    zeroshot: Optional[tuple[list[M.Clip], list[np.ndarray]]] = None


@dataclass
class Manifests:
    """Every clip list a run reads, parsed before any model is built (bad input fails in a second)."""

    train: list[M.Clip]
    val: list[M.Clip]
    zeroshot: Optional[list[M.Clip]]
    backgrounds: list[M.Clip]
    gate_texts: list[str]  # what a gated text projection remembers (`data.gate_texts`, else the captions)


def read_manifests(config: TrainConfig) -> Manifests:
    d = config.data
    clips = M.read_manifest(d.train, d.templates, d.audio_root)
    if d.val is not None:
        train, val = clips, M.read_manifest(d.val, d.templates, d.audio_root)
    else:
        train, val = M.split_clips(clips, d.val_fraction, config.train.seed)
    zeroshot = None
    if d.zeroshot is not None:
        zeroshot = [M.Clip(c.path, (), c.label) for c in read_labelled_manifest(d.zeroshot, d.audio_root)]
    backgrounds = []
    if config.augment.mix_prob > 0 and config.augment.background:
        backgrounds = [M.Clip(p, ("",)) for p in M.read_audio_list(config.augment.background)]
    gate_texts = M.read_text_lines(d.gate_texts) if d.gate_texts else [t for c in train for t in c.captions]
    return Manifests(train, val, zeroshot, backgrounds, gate_texts)


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
