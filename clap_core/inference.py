"""File-level inference: one embedding per audio file, however long or short the file is.

Many files (`embed_files`, used by `clap-eval`) are embedded with their windows pooled into model
calls of `batch_size` windows across file boundaries, while a worker thread decodes the next files;
each window's embedding does not depend on which others share its call, so the result equals
embedding each file on its own (tested).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .audio_io import load_audio, resample
from .clips import clip_windows
from .errors import AudioFileError
from .prefetch import prefetched
from .protocol import InferenceModel, unit

BATCH_SIZE = 32  # windows per model call
PREFETCH = 8  # files decoded ahead of the model

Embedded = tuple[Path, "np.ndarray | AudioFileError"]


def file_windows(model: InferenceModel, path: str | Path) -> np.ndarray:
    """The file's fixed clip-length windows `[n, samples]` at the model's rate (deterministic, no crop)."""
    wave, rate = load_audio(path)
    return clip_windows(resample(wave, rate, model.sample_rate), model.sample_rate, model.clip_seconds)


def embed_file(model: InferenceModel, path: str | Path, batch_size: int = 8) -> np.ndarray:
    """`[d]` unit-length embedding of a whole file: the mean direction of its clip-length windows."""
    (_, emb), = embed_files(model, [path], batch_size, prefetch=0)
    if isinstance(emb, AudioFileError):
        raise emb
    return emb


def embed_files(model: InferenceModel, paths: Iterable[str | Path], batch_size: int = BATCH_SIZE,
                prefetch: int = PREFETCH) -> Iterator[Embedded]:
    """(path, `[d]` unit embedding or the AudioFileError that made it unreadable) per file, in order."""
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    pending: list[tuple[Path, np.ndarray | AudioFileError]] = []
    held = 0
    for path, windows in prefetched(((Path(p), _windows_or_error(model, p)) for p in paths), prefetch):
        pending.append((path, windows))
        held += len(windows) if isinstance(windows, np.ndarray) else 0
        if held >= batch_size:
            yield from _embed_pending(model, pending, batch_size)
            pending, held = [], 0
    yield from _embed_pending(model, pending, batch_size)


def _windows_or_error(model: InferenceModel, path: str | Path) -> np.ndarray | AudioFileError:
    try:
        return file_windows(model, path)
    except AudioFileError as exc:
        return exc


def _embed_pending(model: InferenceModel, pending: list[tuple[Path, np.ndarray | AudioFileError]],
                   batch_size: int) -> Iterator[Embedded]:
    """Embed the held files' windows `batch_size` at a time, then pool each file's rows."""
    stacks = [w for _, w in pending if isinstance(w, np.ndarray)]
    if stacks:
        windows = np.concatenate(stacks)
        rows = np.concatenate([unit(model.embed_audio(windows[i:i + batch_size], model.sample_rate))
                               for i in range(0, len(windows), batch_size)])
    start = 0
    for path, w in pending:
        if isinstance(w, AudioFileError):
            yield path, w
            continue
        yield path, unit(rows[start:start + len(w)].mean(axis=0))
        start += len(w)


def prompt_embeddings(model: InferenceModel, labels: list[str], template: str) -> np.ndarray:
    """Unit-length embeddings of the labels wrapped in the template."""
    return unit(model.embed_text([template.format(label) for label in labels]))


def zero_shot_probabilities(model: InferenceModel, audio_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Softmax over classes of the model's scaled cosine similarity."""
    logits = model.similarity(audio_emb.reshape(1, -1), text_emb)[0].astype(np.float64)
    e = np.exp(logits - logits.max())
    return e / e.sum()
