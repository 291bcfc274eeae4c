"""A text tower that runs in a short-lived child process (`isolate_text`): the torch stand-in.

The child is `towers/text_source.py`'s; this stand-in only gives `ClapModel` a `TextTower` of the
real tower's width whose `forward` asks the child, so the text projection stays in this process.
"""
from __future__ import annotations

import torch

from ..errors import ClapError
from .base import TextTower
from .text_source import TextTowerSource, tower_features_in_child


class ChildProcessTextTower(TextTower):
    """`source` says how the child builds the real tower."""

    def __init__(self, source: TextTowerSource, out_dim: int) -> None:
        super().__init__()
        self.source = source
        self.out_dim = int(out_dim)
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)  # follows .to(device)

    def forward(self, texts: list[str]) -> torch.Tensor:
        if torch.is_grad_enabled():
            raise ClapError("a text tower in a child process gives no gradients; load the model "
                            "without isolate_text to train it")
        return torch.from_numpy(tower_features_in_child(self.source, texts)).to(self._anchor.device)
