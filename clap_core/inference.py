"""File-level inference: one embedding per audio file, however long or short the file is."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .audio_io import load_audio, resample
from .clips import clip_windows
from .model import ClapModel


def embed_file(model: ClapModel, path: str | Path, batch_size: int = 8) -> torch.Tensor:
    """`[d]` unit-length embedding of a whole file: the mean direction of its 5-s windows.

    Deterministic (fixed windows, no random crop), so a file always gets the same embedding.
    """
    wave, rate = load_audio(path)
    wave = resample(wave, rate, model.sample_rate)
    windows = torch.from_numpy(clip_windows(wave, model.sample_rate, model.clip_seconds))
    parts = [F.normalize(model.embed_audio(windows[i : i + batch_size], model.sample_rate), dim=-1)
             for i in range(0, windows.shape[0], batch_size)]
    return F.normalize(torch.cat(parts).mean(dim=0), dim=-1)


def prompt_embeddings(model: ClapModel, labels: list[str], template: str) -> torch.Tensor:
    """Unit-length embeddings of the labels wrapped in the template."""
    return F.normalize(model.embed_text([template.format(label) for label in labels]), dim=-1)


def zero_shot_probabilities(model: ClapModel, audio_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Softmax over classes of the model's scaled cosine similarity."""
    return F.softmax(model.similarity(audio_emb.reshape(1, -1), text_emb)[0], dim=-1)
