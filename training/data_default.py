"""Paired training signal for the embedded default model, built only from what is offline.

Two sources, written as one caption manifest for `training/train.py`:
- real recordings with their class label (`labels.csv`: path, label) turned into captions through
  generic templates ("the sound of {}"), and
- YAMNet's own AudioSet labels as captions for the same audio ("what the tagger hears"): they keep
  the joint space anchored to AudioSet's 521 label names, which is what lets classes never seen in
  training still land near the right words.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from clap_core.audio_io import load_audio, resample
from clap_core.clips import clip_windows
from clap_core.config import CLIP_SECONDS
from clap_core.manifest import LabelledClip, read_labelled_manifest

TEMPLATES = (
    "This is a sound of {}.",
    "The sound of {}.",
    "A recording of {}.",
    "{} can be heard.",
)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power ∝ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    x = np.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return (x / np.sqrt(np.mean(x ** 2))).astype(np.float32)


def background_noises(count: int, seconds: float, rate: int, seed: int = 0) -> list[np.ndarray]:
    """Synthetic "nothing is happening" audio a robot hears: coloured noise (fans, air, room tone,
    microphone hiss) and mains hum with harmonics under noise, at random colours and levels.
    Generated, not recorded, so no data set is needed; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    out = []
    for k in range(count):
        x = coloured_noise(n, float(rng.uniform(0.0, 2.0)), rng)
        if k % 3 == 2:  # hum: 50 or 60 Hz and a few harmonics over the noise
            f0 = 50.0 if rng.random() < 0.5 else 60.0
            hum = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 6))
            x = x * rng.uniform(0.1, 0.5) + hum.astype(np.float32)
        out.append((x / np.sqrt(np.mean(x ** 2)) * 10 ** (rng.uniform(-70, -30) / 20)).astype(np.float32))
    return out


def read_labels(csv_path: str | Path) -> list[LabelledClip]:
    """`path,label` rows (extra columns ignored), read by the library's manifest reader; paths are
    made absolute because the recipe rewrites them into manifests in other folders."""
    return [LabelledClip(clip.path.resolve(), clip.label) for clip in read_labelled_manifest(csv_path)]


def clip_probs(tower: torch.nn.Module, names: Sequence[str], clip: LabelledClip) -> np.ndarray:
    """YAMNet's class probabilities for a whole clip (mean over its 5-s windows)."""
    wave, rate = load_audio(clip.path)
    wave = resample(wave, rate, tower.sample_rate)
    windows = torch.from_numpy(clip_windows(wave, tower.sample_rate, CLIP_SECONDS))
    return tower(windows)[:, -len(names):].mean(dim=0).numpy()


def heard_labels(probs: np.ndarray, names: Sequence[str], top_k: int, min_prob: float) -> list[str]:
    """The AudioSet labels YAMNet is most confident about (at least the top one)."""
    order = np.argsort(-probs)[:top_k]
    return [names[i] for i in order if probs[i] >= min_prob] or [names[int(order[0])]]


def write_manifest(clips: Sequence[LabelledClip], out_csv: Path, tower: torch.nn.Module,
                   names: Sequence[str], templates: Sequence[str] = TEMPLATES, heard_top_k: int = 3,
                   heard_min_prob: float = 0.1) -> tuple[Path, np.ndarray]:
    """One `path,caption` row per caption: every template × the true label and × each heard
    AudioSet label, so with 3 heard labels 3/4 of the sampled captions are YAMNet's words (more
    of them kept classes never trained on better placed; fewer fit the trained classes better).
    Returns the manifest and the clips' class probabilities `[n_clips, 521]`."""
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    all_probs = []
    with out_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "caption"])
        for clip in clips:
            for template in templates:
                writer.writerow([str(clip.path), template.format(clip.label)])
            all_probs.append(clip_probs(tower, names, clip))
            for label in heard_labels(all_probs[-1], names, heard_top_k, heard_min_prob):
                for template in templates:
                    writer.writerow([str(clip.path), template.format(label)])
    return out_csv, np.stack(all_probs)


def append_background(manifest: Path, folder: Path, tower: torch.nn.Module, names: Sequence[str],
                      count: int = 24, seconds: float = 10.0, seed: int = 0,
                      templates: Sequence[str] = TEMPLATES, heard_top_k: int = 3,
                      heard_min_prob: float = 0.1) -> list[Path]:
    """Add `count` synthetic background recordings (`background_noises`, written as WAV files into
    `folder`) to a caption manifest, captioned only by what YAMNet hears in them ("Pink noise",
    "Static", "Waterfall" …). Without them the model never sees "nothing happening" and a noisy
    room reads as water. Returns the written files."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with manifest.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        for k, noise in enumerate(background_noises(count, seconds, tower.sample_rate, seed)):
            path = (folder / f"noise{k:02d}.wav").resolve()
            sf.write(str(path), noise, tower.sample_rate, subtype="FLOAT")
            probs = tower(torch.from_numpy(clip_windows(noise, tower.sample_rate, CLIP_SECONDS)))[:, -len(names):].mean(dim=0)
            for label in heard_labels(probs.numpy(), names, heard_top_k, heard_min_prob):
                for template in templates:
                    writer.writerow([str(path), template.format(label)])
            paths.append(path)
    return paths


def write_labels(clips: Sequence[LabelledClip], out_csv: Path) -> Path:
    """`path,label` manifest: the validation set (one caption per clip, through the config's template)."""
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        for clip in clips:
            writer.writerow([str(clip.path), clip.label])
    return out_csv


def one_per_label(clips: Sequence[LabelledClip]) -> list[LabelledClip]:
    """The first clip of every label, in order."""
    seen: dict[str, LabelledClip] = {}
    for clip in clips:
        seen.setdefault(clip.label, clip)
    return list(seen.values())
