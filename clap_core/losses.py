"""The CLAP training objective."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def scaled_cosine(audio_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
                  max_scale: float = 100.0) -> torch.Tensor:
    """`[n_audio, n_text]` logits: exp(logit_scale), clipped at `max_scale`, times cosine similarity."""
    audio = F.normalize(audio_emb, dim=-1)
    text = F.normalize(text_emb, dim=-1)
    return logit_scale.exp().clamp(max=max_scale) * audio @ text.T


def contrastive_loss(audio_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
                     max_scale: float = 100.0) -> torch.Tensor:
    """Symmetric cross-entropy: row i of audio matches row i of text, softmax over rows and columns."""
    logits = scaled_cosine(audio_emb, text_emb, logit_scale, max_scale)
    targets = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
