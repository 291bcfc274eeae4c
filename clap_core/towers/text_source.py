"""The one child-process text path: where a text tower comes from, and embedding text in a child.

A robot's node embeds its prompts once (and again on a reload) and then only listens. Loading the
text encoder into that process would keep its code and weights resident for the whole run —
`transformers` alone is ≈ 100–180 MB that Python never gives back. So text is embedded by a fresh
Python (`python -m clap_core.towers.text_source`) that builds what it needs, writes the array to
stdout and exits (`clap_core.child_process`). One request, two answers:

- `{"source": TextTowerSource, "texts"}` → the tower's features (the torch runtime's
  `isolate_text`: its text projection stays in the parent, `towers/child_text.py`);
- `{"weights": path, "texts", "mixes"}` → joint-space embeddings (the ONNX runtime, which has no torch
  to run a projection with).

Torch-free at import: the ONNX runtime's process imports this module.
"""
from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..child_process import run_child, serve
from ..config import TextTowerConfig
from ..errors import CheckpointError

if TYPE_CHECKING:
    from .base import TextTower

TIMEOUT_S = 900.0  # BERT-base on a few hundred prompts takes seconds; a hung child must not hang the caller


@dataclass(frozen=True)
class TextTowerSource:
    """Where a model's text tower and its weights come from, as plain data. Calling it builds the
    tower: to reload it after `release_text_tower()`, or inside the child process (which receives
    it as JSON via `to_dict`), which is why this is data and not a closure."""

    config: TextTowerConfig
    path: str = ""  # the checkpoint file holding the tower's tensors; "" when a package provides them
    layout: str = "project"  # or "msclap-2022", "msclap-2023"

    def __call__(self) -> TextTower:
        from .registry import build_text_tower

        tower = build_text_tower(self.config)
        if self.config.weights_from_package:
            return tower
        state = self._tower_state()
        if "encoder.embeddings.position_ids" not in tower.state_dict():  # checked when the model loaded
            state.pop("encoder.embeddings.position_ids", None)
        try:
            tower.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.path}: the text tower's tensors do not match its config "
                                  f"({str(exc).strip().splitlines()[0][:300]})") from None
        return tower

    def to_dict(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "path": self.path, "layout": self.layout}

    @classmethod
    def from_dict(cls, data: dict) -> "TextTowerSource":
        return cls(TextTowerConfig(**data["config"]), data["path"], data["layout"])

    def _tower_state(self) -> dict[str, Any]:
        """The tower's tensors, keyed as the tower names them."""
        from ..weights_files import read_safetensors, read_torch_checkpoint

        if self.layout == "project":
            prefix = "text_tower."
            return {k[len(prefix):]: v for k, v in read_safetensors(Path(self.path), prefix).items()}
        from ..msclap_2023 import is_gpt2_buffer  # checked when the model loaded

        prefix = "caption_encoder.base."
        return {"encoder." + k[len(prefix):]: v for k, v in read_torch_checkpoint(Path(self.path)).items()
                if k.startswith(prefix) and not is_gpt2_buffer(k)}


def tower_features_in_child(source: TextTowerSource, texts: Sequence[str]) -> np.ndarray:
    """`[n, tower width]` features of `texts` from the tower `source` describes, built in a child."""
    return _ask({"source": source.to_dict(), "texts": list(texts)})


def embeddings_in_child(weights: str, texts: Sequence[str], mixes: Sequence[str] | None = None) -> np.ndarray:
    """`[n, d]` joint-space embeddings of `texts` (`mixes` as `ClapModel.embed_text`) by the torch
    model of `weights`, loaded in a child."""
    return _ask({"weights": str(weights), "texts": list(texts), "mixes": None if mixes is None else list(mixes)})


def _ask(request: dict[str, Any]) -> np.ndarray:
    out = run_child(__name__, request, "text-encoder", TIMEOUT_S)
    return np.load(io.BytesIO(out), allow_pickle=False)


def _handle(request: dict[str, Any]) -> bytes:
    """The child's side (imports torch)."""
    import torch

    if "source" in request:
        tower = TextTowerSource.from_dict(request["source"])().eval()
        with torch.inference_mode():
            out = tower(request["texts"]).float().cpu().numpy()
    else:
        from ..factory import load_torch_model

        model = load_torch_model(request["weights"])
        with torch.inference_mode():
            out = model.embed_text(request["texts"], request["mixes"]).float().cpu().numpy()
    buffer = io.BytesIO()
    np.save(buffer, out, allow_pickle=False)
    return buffer.getvalue()


if __name__ == "__main__":
    raise SystemExit(serve(_handle))
