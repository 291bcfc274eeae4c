"""File-level inference: one embedding per audio file, however long or short the file is."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .audio_io import load_audio, resample
from .clips import clip_windows
from .protocol import InferenceModel, unit


def embed_file(model: InferenceModel, path: str | Path, batch_size: int = 8) -> np.ndarray:
    """`[d]` unit-length embedding of a whole file: the mean direction of its clip-length windows.

    Deterministic (fixed windows, no random crop), so a file always gets the same embedding.
    """
    wave, rate = load_audio(path)
    wave = resample(wave, rate, model.sample_rate)
    windows = clip_windows(wave, model.sample_rate, model.clip_seconds)
    parts = [unit(model.embed_audio(windows[i : i + batch_size], model.sample_rate))
             for i in range(0, windows.shape[0], batch_size)]
    return unit(np.concatenate(parts).mean(axis=0))


def prompt_embeddings(model: InferenceModel, labels: list[str], template: str) -> np.ndarray:
    """Unit-length embeddings of the labels wrapped in the template."""
    return unit(model.embed_text([template.format(label) for label in labels]))


def zero_shot_probabilities(model: InferenceModel, audio_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Softmax over classes of the model's scaled cosine similarity."""
    logits = model.similarity(audio_emb.reshape(1, -1), text_emb)[0].astype(np.float64)
    e = np.exp(logits - logits.max())
    return e / e.sum()
