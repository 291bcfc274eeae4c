"""A text tower that runs in a short-lived child process.

A robot's node embeds its prompts once (and again on a reload) and then only listens. Loading the
text encoder into that process would keep its code and weights resident for the whole run —
`transformers` alone is ≈ 100–180 MB that Python never gives back. This stand-in starts a fresh
Python for each call (`python -m clap_core.towers.child_text`), which builds the real tower from
the checkpoint, embeds the texts, writes the array to stdout and exits (`clap_core.child_process`).
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

from ..child_process import run_child, serve
from ..errors import ClapError
from .base import TextTower

TIMEOUT_S = 600.0  # BERT-base on a few hundred prompts takes seconds; a hung child must not hang the caller


class ChildProcessTextTower(TextTower):
    """`source` (a `checkpoints.TextTowerSource`) says how the child builds the real tower."""

    def __init__(self, source: Any, out_dim: int) -> None:
        super().__init__()
        self.source = source
        self.out_dim = int(out_dim)
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)  # follows .to(device)

    def forward(self, texts: list[str]) -> torch.Tensor:
        if torch.is_grad_enabled():
            raise ClapError("a text tower in a child process gives no gradients; load the model "
                            "without isolate_text to train it")
        request = {"source": self.source.to_dict(), "texts": list(texts)}
        out = run_child(__name__, request, "text-encoder", TIMEOUT_S)
        return torch.from_numpy(np.load(io.BytesIO(out))).to(self._anchor.device)


def _embed(request: dict[str, Any]) -> bytes:
    from ..checkpoints import TextTowerSource

    tower = TextTowerSource.from_dict(request["source"])().eval()
    with torch.inference_mode():
        out = tower(request["texts"]).float().cpu().numpy()
    buffer = io.BytesIO()
    np.save(buffer, out, allow_pickle=False)
    return buffer.getvalue()


if __name__ == "__main__":
    raise SystemExit(serve(_embed))
