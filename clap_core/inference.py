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
import torch
import torch.nn.functional as F

from .audio_io import clip_windows, load_audio, resample
from .errors import AudioFileError
from .model import ClapModel
from .prefetch import prefetched

BATCH_SIZE = 32  # windows per model call
PREFETCH = 8  # files decoded ahead of the model

Embedded = tuple[Path, "torch.Tensor | AudioFileError"]


def file_windows(model: ClapModel, path: str | Path) -> np.ndarray:
    """The file's fixed 5-s windows `[n, samples]` at the model's rate (deterministic, no crop)."""
    wave, rate = load_audio(path)
    return clip_windows(resample(wave, rate, model.sample_rate), model.sample_rate, model.clip_seconds)


def embed_file(model: ClapModel, path: str | Path, batch_size: int = 8) -> torch.Tensor:
    """`[d]` unit-length embedding of a whole file: the mean direction of its 5-s windows."""
    (_, emb), = embed_files(model, [path], batch_size, prefetch=0)
    if isinstance(emb, AudioFileError):
        raise emb
    return emb


def embed_files(model: ClapModel, paths: Iterable[str | Path], batch_size: int = BATCH_SIZE,
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


def _windows_or_error(model: ClapModel, path: str | Path) -> np.ndarray | AudioFileError:
    try:
        return file_windows(model, path)
    except AudioFileError as exc:
        return exc


def _embed_pending(model: ClapModel, pending: list[tuple[Path, np.ndarray | AudioFileError]],
                   batch_size: int) -> Iterator[Embedded]:
    """Embed the held files' windows `batch_size` at a time, then pool each file's rows."""
    stacks = [w for _, w in pending if isinstance(w, np.ndarray)]
    if stacks:
        windows = torch.from_numpy(np.concatenate(stacks))
        rows = torch.cat([F.normalize(model.embed_audio(windows[i:i + batch_size], model.sample_rate), dim=-1)
                          for i in range(0, len(windows), batch_size)])
    start = 0
    for path, w in pending:
        if isinstance(w, AudioFileError):
            yield path, w
            continue
        yield path, F.normalize(rows[start:start + len(w)].mean(dim=0), dim=-1)
        start += len(w)


def prompt_embeddings(model: ClapModel, labels: list[str], template: str) -> torch.Tensor:
    """Unit-length embeddings of the labels wrapped in the template."""
    return F.normalize(model.embed_text([template.format(label) for label in labels]), dim=-1)


def zero_shot_probabilities(model: ClapModel, audio_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Softmax over classes of the model's scaled cosine similarity."""
    return F.softmax(model.similarity(audio_emb.reshape(1, -1), text_emb)[0], dim=-1)
