"""Microsoft's CLAP 2022 checkpoint layout (`CLAP_weights_2022.pth`): detection, key mapping both ways.

CNN14 sits under `audio_encoder.base.`, BERT under `caption_encoder.base.`. Every key is accounted
for: the STFT kernels are checked to be the DFT our front end computes, BERT's `position_ids`
buffer to be 0..n-1 where our tower has none, and any other key the model does not name is an error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from .config import msclap_2022_config
from .errors import CheckpointError
from .model import ClapModel
from .state_loading import KeyMap, check_stft_kernels, load_foreign, rename_keys

# The part of the layout the 2023 file shares (`msclap_2023`).
SHARED_PREFIXES = (
    ("audio_encoder.projection.", "audio_projection."),
    ("caption_encoder.base.", "text_tower.encoder."),
    ("caption_encoder.projection.", "text_projection."),
    ("logit_scale", "logit_scale"),
)
# Order matters: the first matching prefix wins.
KEYS = KeyMap((
    ("audio_encoder.base.logmel_extractor.melW", "audio_tower.frontend.mel_basis"),
    ("audio_encoder.base.", "audio_tower."),
    *SHARED_PREFIXES,
))
STFT_KEYS = ("audio_encoder.base.spectrogram_extractor.stft.conv_real.weight",
             "audio_encoder.base.spectrogram_extractor.stft.conv_imag.weight")
POSITION_IDS = "caption_encoder.base.embeddings.position_ids"


def is_msclap_2022(state: Mapping[str, torch.Tensor]) -> bool:
    """Microsoft's layout: CNN14 under audio_encoder.base, BERT under caption_encoder.base."""
    return "audio_encoder.base.conv_block1.conv1.weight" in state and any(
        k.startswith("caption_encoder.base.") for k in state)


def to_project_state(model: ClapModel, state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Rename Microsoft's keys to ours; verify the keys we compute instead of storing."""
    check_stft_kernels(model, state, STFT_KEYS, source)
    has_position_ids = "text_tower.encoder.embeddings.position_ids" in model.state_dict()

    def accounted(key: str, value: torch.Tensor) -> bool:
        if key in STFT_KEYS:
            return True
        if key == POSITION_IDS and not has_position_ids:
            if not torch.equal(value.flatten().long(), torch.arange(value.numel())):
                raise CheckpointError(f"{source}: {key} is not 0..{value.numel() - 1}")
            return True
        return False

    return rename_keys(state, KEYS, source, accounted)


def load(path: Path, state: dict[str, torch.Tensor], isolate_text: bool = False) -> ClapModel:
    """A `ClapModel` with the 2022 file's weights, every key accounted for."""
    return load_foreign(path, state, msclap_2022_config(), "msclap-2022", "caption_encoder.projection.",
                        to_project_state, KEYS, isolate_text)


def project_to_msclap_state(model: ClapModel) -> dict[str, torch.Tensor]:
    """The model's weights in Microsoft's layout (for their code or other tools)."""
    if model.config.audio.kind != "cnn14" or model.text_tower is None:
        raise CheckpointError("only a CNN14 model with its text tower loaded can be written in MS-CLAP layout")
    out = {}
    for key, value in model.state_dict().items():
        name = KEYS.theirs(key)
        if KEYS.ours(name) != key:
            raise CheckpointError(f"no MS-CLAP name for key {key}")
        out[name] = value.detach().cpu().clone()
    out[STFT_KEYS[0]], out[STFT_KEYS[1]] = model.audio_tower.frontend.dft_kernels()
    return out


def save_msclap_checkpoint(model: ClapModel, path: str | Path) -> Path:
    """Write `{"model": state_dict}` as Microsoft's loader expects."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": project_to_msclap_state(model)}, str(path))
    return path
