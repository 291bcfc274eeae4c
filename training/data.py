"""Training data: clips (see manifests.py) → decoded audio → random, augmented fixed-length crops.

Every random choice for a sample (crop start, caption, augmentations) comes from a generator seeded by
(seed, epoch, clip index), never from global state: a resumed run, a run with worker processes and
each DDP rank all draw exactly what an uninterrupted single-process run would.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from clap_core.clips import crop, scale_to_snr
from clap_core.errors import AudioFileError, ManifestError

from .manifests import Clip


# ---------------------------------------------------------------- audio


def load_clip_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Decode any format/rate through clap_core and resample to the model's rate."""
    from clap_core.audio_io import load_audio, resample

    wave, rate = load_audio(path)
    wave = np.asarray(wave, dtype=np.float32)
    if rate != sample_rate:
        wave = np.asarray(resample(wave, rate, sample_rate), dtype=np.float32)
    if wave.size == 0:
        raise AudioFileError(f"{path}: holds no samples")
    return wave


def load_all(clips: Sequence[Clip], sample_rate: int, what: str, progress: bool = False,
             cache: bool = True) -> tuple[list[Clip], Sequence[np.ndarray]]:
    """Decode every clip up front (cache) or just check the files exist (decoded on each access).

    Unreadable or missing files are skipped with a one-line warning each; none left is an error."""
    from tqdm import tqdm

    kept, waves = [], []
    for clip in tqdm(clips, desc=f"loading {what}", disable=not progress, file=sys.stderr, leave=False):
        try:
            if cache:
                waves.append(load_clip_audio(clip.path, sample_rate))
            elif not clip.path.is_file():
                raise AudioFileError(f"{clip.path}: no such audio file")
            kept.append(clip)
        except AudioFileError as exc:
            print(f"warning: skipping {what} clip: {exc}", file=sys.stderr)
    if not kept:
        raise ManifestError(f"{what}: none of the {len(clips)} audio files could be read "
                            f"(first: {clips[0].path if clips else '-'}); check the paths or data.audio_root")
    return kept, (waves if cache else LazyWaves(kept, sample_rate))


class LazyWaves(Sequence):
    """Clips decoded on access, for data sets too large to hold in memory (data.cache_audio: false)."""

    def __init__(self, clips: Sequence[Clip], sample_rate: int) -> None:
        self.paths = [c.path for c in clips]
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        return load_clip_audio(self.paths[index], self.sample_rate)


# ---------------------------------------------------------------- dataset


class ClipDataset(Dataset):
    """Fixed-length crops of clips with one caption each.

    train=True: random crop, random caption, augmentations (all seeded per epoch and clip).
    train=False: the first window and the first caption, so validation is the same every epoch.
    """

    def __init__(self, clips: Sequence[Clip], waves: Sequence[np.ndarray], sample_rate: int, clip_seconds: float,
                 train: bool, seed: int = 0, augment: Any = None, backgrounds: Sequence[np.ndarray] = ()):
        self.clips = list(clips)
        self.waves = waves
        self.sample_rate = sample_rate
        self.length = int(round(clip_seconds * sample_rate))
        self.train = train
        self.seed = seed
        self.augment = augment
        self.backgrounds = backgrounds
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, int]:
        clip, wave = self.clips[index], self.waves[index]
        if not self.train:
            return torch.from_numpy(crop(wave, self.length, None).copy()), clip.captions[0], index
        rng = np.random.default_rng([self.seed, self.epoch, index])
        random_crop = self.augment is None or self.augment.random_crop
        out = crop(wave, self.length, rng if random_crop else None).astype(np.float32, copy=True)
        caption = clip.captions[int(rng.integers(len(clip.captions)))]
        if self.augment is not None:
            out = self._augment(out, index, rng)
        return torch.from_numpy(out), caption, index

    def _augment(self, out: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
        """Gain, background mix, circular shift — each drawn even when off, so switching one
        augmentation does not change what the others draw."""
        a = self.augment
        gain_on, gain_db = rng.random() < a.gain_prob, rng.uniform(*a.gain_db)
        mix_on, snr_db, pick = rng.random() < a.mix_prob, rng.uniform(*a.mix_snr_db), int(rng.integers(1 << 30))
        shift_on, shift = rng.random() < a.shift_prob, int(rng.integers(self.length))
        if mix_on:
            noise = self._background(index, pick, rng)
            if noise is not None:
                out = out + scale_to_snr(out, noise, snr_db)
        if gain_on:
            out = out * np.float32(10.0 ** (gain_db / 20.0))
        if shift_on:
            out = np.roll(out, shift)
        return out.astype(np.float32, copy=False)

    def _background(self, index: int, pick: int, rng: np.random.Generator) -> Optional[np.ndarray]:
        if self.backgrounds:
            return crop(self.backgrounds[pick % len(self.backgrounds)], self.length, rng)
        if len(self.waves) < 2:
            return None
        other = pick % (len(self.waves) - 1)
        other += other >= index  # any clip but this one
        return crop(self.waves[other], self.length, rng)


def collate(batch: Iterable[tuple[torch.Tensor, str, int]]) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    waves, captions, indices = zip(*batch)
    return torch.stack(waves), list(captions), torch.tensor(indices)


def relevance(clips: Sequence[Clip]) -> tuple[list[str], torch.Tensor]:
    """Every distinct caption of `clips` and which clips it describes: [n_clips, n_captions] bool.

    Identical captions on different clips (e.g. two clips of one label) count as correct for both."""
    captions: list[str] = []
    column: dict[str, int] = {}
    for clip in clips:
        for caption in clip.captions:
            if caption not in column:
                column[caption] = len(captions)
                captions.append(caption)
    rel = torch.zeros(len(clips), len(captions), dtype=torch.bool)
    for row, clip in enumerate(clips):
        for caption in clip.captions:
            rel[row, column[caption]] = True
    return captions, rel
