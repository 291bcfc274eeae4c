"""Validation after each epoch: loss on fixed crops, retrieval both ways, zero-shot accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from clap_core.clips import clip_windows
from clap_core.losses import contrastive_loss

from .config import TrainConfig
from .data_setup import DataBundle
from .manifests import Clip
from .metrics import mean_normalised, retrieval_metrics, zeroshot_accuracy
from .precision import Precision


@dataclass
class Evaluator:
    """Every rank computes the same numbers (so the LR schedule stays in step without a broadcast)."""

    model: nn.Module
    config: TrainConfig
    device: torch.device
    precision: Precision
    clip_seconds: float

    @torch.no_grad()
    def __call__(self, data: DataBundle) -> dict[str, float]:
        """Validation loss (fixed crops, first caption, fixed batches), retrieval both ways, zero-shot."""
        self.model.eval()
        val = data.val
        audio = self._embed_audio(val[i][0] for i in range(len(val)))
        first = [val.clips[i].captions[0] for i in range(len(val))]
        metrics = {"val_loss": self._val_loss(audio, first)}
        text = self._embed_text(data.val_captions)
        sim = torch.nn.functional.normalize(audio, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
        metrics.update(retrieval_metrics(sim, data.val_relevance))
        if data.zeroshot is not None:
            metrics["zeroshot_acc"] = self._zeroshot(*data.zeroshot)
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
        with self.precision.autocast():
            return self.model.encode_audio(torch.stack(chunk).to(self.device)).float().cpu()

    def _embed_text(self, texts: list[str]) -> torch.Tensor:
        out = []
        size = self.config.train.eval_batch_size
        for i in range(0, len(texts), size):
            with self.precision.autocast():
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

    def _zeroshot(self, clips: list[Clip], waves: list[np.ndarray]) -> float:
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
