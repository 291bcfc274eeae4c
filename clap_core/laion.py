"""LAION-CLAP through `transformers.ClapModel`: a folder written by `save_pretrained` (model and
`ClapProcessor` files, e.g. `laion/clap-htsat-unfused`) behind the same interface as `ClapModel`.

Nothing of the model is re-implemented: audio goes through the folder's `ClapFeatureExtractor`
and `get_audio_features`, text through its tokenizer and `get_text_features`.

Determinism: the feature extractor crops clips longer than its `max_length_s` (10 s) at random
(`rand_trunc`) or picks random chunks (`fusion`). We never hand it more than `max_length_s`: a
longer clip is cut into consecutive 10-s pieces (the last one repeat-padded by the extractor, as
it pads any short clip) whose embeddings are averaged, so the same audio always gives the same
embedding and no part of it is ignored. The node's windows are `clip_seconds` (10 s) long, so
it never reaches that path.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .audio_io import resample, waveform_batch
from .config import DEFAULT_TEMPLATE, AudioTowerConfig, ModelConfig, TextTowerConfig
from .errors import CheckpointError
from .losses import scaled_cosine
from .precision import autocast
from .protocol import distinct

# Either is a saved ClapProcessor: transformers 5 writes the first, the hub's LAION folders hold the second.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


def is_laion_folder(folder: Path) -> bool:
    """A `transformers` CLAP folder: config.json with model_type "clap"."""
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") == "clap"
    except (OSError, ValueError, AttributeError):
        return False


def _check_loading_info(folder: Path, info: dict) -> None:
    """transformers fills missing weights with random ones and skips unexpected ones: both are errors."""
    problems = {k: sorted(info.get(k) or []) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if any(problems.values()):
        shown = "; ".join(f"{len(v)} {k.replace('_', ' ')}: {', '.join(map(str, v[:6]))}"
                          for k, v in problems.items() if v)
        raise CheckpointError(f"{folder}: weights do not match the model config ({shown})")


class LaionClapModel(nn.Module):
    """`transformers.ClapModel` + `ClapProcessor` with `ClapModel`'s embedding/scoring methods."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        from transformers import ClapModel as HFClapModel
        from transformers import ClapProcessor

        if not any((folder / name).is_file() for name in PROCESSOR_FILES):
            raise CheckpointError(f"{folder}: no {' or '.join(PROCESSOR_FILES)} (save the ClapProcessor beside "
                                  "the model with processor.save_pretrained(folder))")
        try:
            self.processor = ClapProcessor.from_pretrained(str(folder), local_files_only=True)
            hf, info = HFClapModel.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{folder}: not a loadable transformers CLAP folder "
                                  f"({str(exc).strip().splitlines()[0][:200]})") from None
        _check_loading_info(folder, info)
        self.hf = hf.eval()
        self.folder = folder
        self.inference_dtype = torch.float32  # see clap_core.precision.apply_precision
        extractor = self.processor.feature_extractor
        vocab = self.hf.config.text_config.vocab_size
        if len(self.processor.tokenizer) > vocab:
            raise CheckpointError(f"{folder}: tokenizer has {len(self.processor.tokenizer)} tokens, "
                                  f"the text model only {vocab} rows")
        self.config = ModelConfig(
            name=f"laion:{folder.name}",
            audio=AudioTowerConfig(kind="transformers-clap", sample_rate=int(extractor.sampling_rate)),
            text=TextTowerConfig(kind="transformers-clap", source=str(folder), pooling="pooler"),
            embed_dim=int(self.hf.config.projection_dim),
            clip_seconds=float(extractor.max_length_s),
        )

    @property
    def sample_rate(self) -> int:
        return self.config.audio.sample_rate

    @property
    def clip_seconds(self) -> float:
        return self.config.clip_seconds

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def device(self) -> torch.device:
        return self.hf.logit_scale_a.device

    @property
    def logit_scale(self) -> torch.Tensor:
        """The audio-side temperature (`logits_per_audio` in transformers' forward)."""
        return self.hf.logit_scale_a

    def embed_audio(self, waveform: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """`[batch, samples]` → `[batch, d]` (unit length), deterministic for any length."""
        if isinstance(waveform, np.ndarray):
            waveform = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
        audio = waveform_batch(waveform.float()).cpu().numpy()
        if int(sample_rate) != self.sample_rate:
            audio = resample(audio, int(sample_rate), self.sample_rate)
        piece = int(self.clip_seconds * self.sample_rate)
        starts = range(0, max(audio.shape[1], 1), piece)
        parts = [self._embed_pieces([row[s:s + piece] for row in audio]) for s in starts]
        return F.normalize(torch.stack(parts).mean(0), dim=-1)

    def embed_audio_parts(self, waveform: torch.Tensor | np.ndarray, sample_rate: int, part_s: float,
                          part_hop_s: float) -> tuple[torch.Tensor, torch.Tensor, list[tuple[float, float]]]:
        """No parts: the feature extractor pads any shorter piece to 10 s, so a part would not be
        a stretch of the window. The whole window is its one part."""
        whole = self.embed_audio(waveform, sample_rate)
        samples = np.shape(waveform)[-1]
        return whole, whole[:, None], [(0.0, samples / int(sample_rate))]

    def _embed_pieces(self, pieces: list[np.ndarray]) -> torch.Tensor:
        inputs = self.processor.feature_extractor(pieces, sampling_rate=self.sample_rate, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode(), autocast(self.device, self.inference_dtype):
            return self.hf.get_audio_features(**inputs).pooler_output.float()

    def embed_text(self, texts: Sequence[str], mixes: Sequence[str] | None = None) -> torch.Tensor:
        """`mixes`: ignored, LAION's text projection has no gates (`protocol.InferenceModel`). Each
        distinct string is encoded once: a predicate set repeats its background prompts per predicate."""
        if isinstance(texts, str):
            raise TypeError("embed_text takes a list of strings, not one string")
        if len(texts) == 0:
            return torch.empty(0, self.embed_dim, device=self.device)
        if self.hf.text_model is None:
            self._reload_text_model()
        unique, rows = distinct(texts)
        tokens = self.processor.tokenizer(unique, padding=True, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        with torch.inference_mode():  # fp32 always: see clap_core.precision
            return self.hf.get_text_features(**tokens).pooler_output[rows]

    def similarity(self, audio_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return scaled_cosine(audio_emb, text_emb, self.logit_scale.detach(), self.config.logit_scale_max)

    def classify(self, waveform: torch.Tensor | np.ndarray, sample_rate: int, labels: Sequence[str],
                 template: str = DEFAULT_TEMPLATE, multi_label: bool = False) -> torch.Tensor:
        prompts = [template.format(label) for label in labels]
        logits = self.similarity(self.embed_audio(waveform, sample_rate), self.embed_text(prompts))
        return torch.sigmoid(logits) if multi_label else F.softmax(logits, dim=-1)

    def release_text_tower(self) -> bool:
        """Drop the text model and its projection once prompt embeddings are cached; `embed_text`
        reloads them from the folder. (Measured: the node's RSS does not drop, ≈1.0 GB either way —
        the tensors view one memory-mapped weights file whose touched pages stay resident.)"""
        self.hf.text_model = None
        self.hf.text_projection = None
        return True

    def compact_for_inference(self) -> None:
        """All inference can spare is the text model (`release_text_tower`)."""
        self.release_text_tower()

    def cache_patches(self, entries: int) -> bool:
        """No patch reuse: HTS-AT's attention sees across the whole clip."""
        return False

    def _reload_text_model(self) -> None:
        from transformers import ClapModel as HFClapModel

        full, info = HFClapModel.from_pretrained(str(self.folder), local_files_only=True, output_loading_info=True)
        _check_loading_info(self.folder, info)
        self.hf.text_model = full.text_model.to(self.device).eval()
        self.hf.text_projection = full.text_projection.to(self.device).eval()


def load_laion(folder: Path) -> LaionClapModel:
    return LaionClapModel(Path(folder))
