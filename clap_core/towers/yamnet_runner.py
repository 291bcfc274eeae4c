"""YAMNet's whole inference path without torch: front end, the ONNX Runtime graph, pooling, parts.

Why a torch-free core: the torch tower (`yamnet.py`, for training and the torch runtime) and the
torch-free ONNX runtime (`onnx_model.py`, the node's default) must hear exactly alike, and a
process that imports torch holds ≈ 190 MB before a weight is loaded. Both wrap this one class, so
their tower outputs are the same bits (NumPy in, NumPy out).

Output per window: `[embedding(1024) ‖ class probabilities(521)]`, each pooled over patches
(embedding: mean; probabilities: sigmoid of logits, mean and max blended), so a projection can use
both what YAMNet hears (its labels) and how it hears it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ..parts import Span
from .patch_cache import PatchCache
from .yamnet_frontend import SAMPLE_RATE, FrontendConfig, YamnetFrontend

EMBED_DIM = 1024
NUM_CLASSES = 521
OUTPUTS = ("embedding", "probs", "both")


def output_width(output: str, patch_hop_frames: int) -> int:
    """The pooled vector's width for these options; a `ConfigError` names a bad option."""
    if output not in OUTPUTS:
        raise ConfigError(f"audio.options.output: '{output}' is not one of {', '.join(OUTPUTS)}")
    if patch_hop_frames < 1:
        raise ConfigError("audio.options.patch_hop_frames: must be a positive number of frames")
    return {"embedding": EMBED_DIM, "probs": NUM_CLASSES, "both": EMBED_DIM + NUM_CLASSES}[output]


class YamnetRunner:
    """waveform `[B, T]` float32 at 16 kHz → pooled YAMNet representation `[B, out_dim]`.

    `session`: ONNX Runtime session of the rewritten export (`yamnet.batched_onnx_bytes`), whose
    uint8 input has quantisation `scale`, `zero`."""

    def __init__(self, session: Any, scale: float, zero: int, output: str = "both",
                 patch_hop_frames: int = 48, max_weight: float = 0.5) -> None:
        self.output = output
        self.max_weight = float(max_weight)
        self.out_dim = output_width(output, patch_hop_frames)
        self.frontend = YamnetFrontend(FrontendConfig(patch_hop_frames=patch_hop_frames))
        self._session, self._scale, self._zero = session, float(scale), int(zero)
        self._input = session.get_inputs()[0].name
        self.patch_cache: PatchCache | None = None

    def cache_patches(self, entries: int) -> bool:
        """Reuse the network's outputs for patches whose uint8 input was seen among the last
        `entries` (0: off). Exact: a patch is only reused when its input is identical, which the
        window-wide level normalisation allows only where the windows' gains are equal."""
        self.patch_cache = PatchCache(entries) if entries > 0 else None
        return self.patch_cache is not None

    def patches_forward(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`[N, 96, 64]` log-Mel patches → (embeddings `[N, 1024]`, logits `[N, 521]`)."""
        q = np.clip(np.round(patches / np.float32(self._scale)) + self._zero, 0, 255).astype(np.uint8)
        cache = self.patch_cache
        emb, logits = cache.run(q, self._network) if cache is not None else self._network(q)
        return emb, logits

    def _network(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 patches `[N, 96, 64]` → (embeddings `[N, 1024]`, logits `[N, 521]`); each row
        depends only on its own patch (checked: equal bits at any batch size)."""
        emb, logits = self._session.run(None, {self._input: q[:, None]})
        return emb.reshape(len(q), EMBED_DIM), logits

    def patch_outputs(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`[B, T]` → per-patch (embeddings `[B, P, 1024]`, logits `[B, P, 521]`)."""
        if waveform.ndim != 2:
            raise ValueError(f"YAMNet tower: expected waveform [batch, samples], got shape {tuple(waveform.shape)}")
        patches = self.frontend(waveform)
        b, p = patches.shape[:2]
        emb, logits = self.patches_forward(patches.reshape(b * p, *patches.shape[2:]))
        return emb.reshape(b, p, EMBED_DIM), logits.reshape(b, p, NUM_CLASSES)

    def pool(self, emb: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Patches `[B, P, ·]` → one vector per clip: embedding mean, probabilities mean/max blend."""
        probs = np.float32(0.5) * (np.float32(1.0) + np.tanh(np.float32(0.5) * logits))  # sigmoid, no overflow
        w = np.float32(self.max_weight)
        probs = (1 - w) * probs.mean(axis=1) + w * probs.max(axis=1)
        parts = {"embedding": [emb.mean(axis=1)], "probs": [probs], "both": [emb.mean(axis=1), probs]}[self.output]
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        return self.pool(*self.patch_outputs(waveform))

    def parts(self, waveform: np.ndarray, part_s: float,
              part_hop_s: float) -> tuple[np.ndarray, np.ndarray, list[Span]]:
        """(whole `[B, F]`, parts `[B, P, F]`, spans). YAMNet already hears in 0.96-s patches: a
        part is a run of consecutive patches (one patch for `part_s` ≤ 0.96 s), pooled like the
        whole window, so parts cost nothing extra."""
        emb, logits = self.patch_outputs(waveform)
        c = self.frontend.cfg
        hop_s = c.patch_hop_frames * c.hop_samples / SAMPLE_RATE
        patch_s = self.frontend.min_samples() / SAMPLE_RATE
        n = emb.shape[1]
        per = min(n, max(1, int(round((part_s - patch_s) / hop_s)) + 1))
        step = max(1, int(round(part_hop_s / hop_s)))
        starts = list(range(0, n - per + 1, step))
        if starts[-1] != n - per:
            starts.append(n - per)
        parts = np.stack([self.pool(emb[:, k:k + per], logits[:, k:k + per]) for k in starts], axis=1)
        spans = [(k * hop_s, (k + per - 1) * hop_s + patch_s) for k in starts]
        return self.pool(emb, logits), parts, spans
