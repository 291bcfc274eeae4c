"""Microsoft's CLAP 2023 checkpoint layout (`CLAP_weights_2023.pth`): detection and key mapping.

HTS-AT sits under `audio_encoder.base.htsat.`, GPT-2 under `caption_encoder.base.`. Every key is
accounted for, as for 2022: the STFT kernels are checked to be the DFT our front end computes,
GPT-2's causal-mask buffers written by older `transformers` (`h.N.attn.bias`,
`h.N.attn.masked_bias`) are accepted by name and checked, and any other key that the model does
not have — or lacks — is an error naming it. (msclap itself loads with `strict=False`.)
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch

from . import state_loading
from .config import msclap_2023_config
from .errors import CheckpointError
from .model import ClapModel
from .msclap_2022 import SHARED_PREFIXES
from .state_loading import KeyMap, check_stft_kernels, rename_keys

KEYS = KeyMap((
    ("audio_encoder.base.htsat.logmel_extractor.melW", "audio_tower.frontend.mel_basis"),
    ("audio_encoder.base.htsat.", "audio_tower."),
    *SHARED_PREFIXES,
))
STFT_KEYS = ("audio_encoder.base.htsat.spectrogram_extractor.stft.conv_real.weight",
             "audio_encoder.base.htsat.spectrogram_extractor.stft.conv_imag.weight")
GPT2_BUFFER = re.compile(r"^caption_encoder\.base\.h\.\d+\.attn\.(bias|masked_bias)$")
TEXT_WIDTH_KEY = "caption_encoder.projection.linear1.weight"


def is_msclap_2023(state: Mapping[str, torch.Tensor]) -> bool:
    """HTS-AT under audio_encoder.base.htsat and GPT-2's token embedding under caption_encoder.base."""
    return ("audio_encoder.base.htsat.patch_embed.proj.weight" in state
            and "caption_encoder.base.wte.weight" in state)


def is_gpt2_buffer(key: str) -> bool:
    """GPT-2's attention buffers that older `transformers` saved and current ones do not."""
    return GPT2_BUFFER.match(key) is not None


def _check_gpt2_buffer(key: str, value: torch.Tensor, source: str) -> None:
    if key.endswith(".masked_bias"):
        if value.numel() != 1:
            raise CheckpointError(f"{source}: {key} should be GPT-2's scalar mask fill, has shape "
                                  f"{tuple(value.shape)}")
        return
    size = value.shape[-1]
    causal = torch.tril(torch.ones(size, size, dtype=torch.bool)).view(1, 1, size, size)
    if tuple(value.shape) != tuple(causal.shape) or not torch.equal(value.bool(), causal):
        raise CheckpointError(f"{source}: {key} is not GPT-2's causal mask (shape {tuple(value.shape)})")


def to_project_state(model: ClapModel, state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Rename the file's keys to ours, after checking the keys we compute instead of storing."""
    check_stft_kernels(model, state, STFT_KEYS, source)

    def accounted(key: str, value: torch.Tensor) -> bool:
        if key in STFT_KEYS:
            return True
        if is_gpt2_buffer(key):
            _check_gpt2_buffer(key, value, source)
            return True
        return False

    return rename_keys(state, KEYS, source, accounted)


def load(path: Path, state: dict[str, torch.Tensor], isolate_text: bool = False) -> ClapModel:
    """A `ClapModel` with the 2023 file's weights, every key accounted for."""
    return state_loading.load_foreign(path, state, msclap_2023_config(), "msclap-2023", TEXT_WIDTH_KEY,
                                      to_project_state, KEYS, isolate_text)


def load_state(model: ClapModel, state: Mapping[str, torch.Tensor], source: str, isolate_text: bool = False) -> None:
    """Strictly load a 2023-layout state dict; errors name the keys as the file names them."""
    state_loading.load_state(model, to_project_state(model, state, source), source, [], isolate_text,
                             file_name=KEYS.theirs)
