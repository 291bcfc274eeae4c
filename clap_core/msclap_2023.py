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

from .config import msclap_2023_config
from .errors import CheckpointError
from .model import ClapModel

_PREFIXES = (
    ("audio_encoder.base.htsat.logmel_extractor.melW", "audio_tower.frontend.mel_basis"),
    ("audio_encoder.base.htsat.", "audio_tower."),
    ("audio_encoder.projection.", "audio_projection."),
    ("caption_encoder.base.", "text_tower.encoder."),
    ("caption_encoder.projection.", "text_projection."),
    ("logit_scale", "logit_scale"),
)
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


def _check_stft(model: ClapModel, state: Mapping[str, torch.Tensor], source: str) -> None:
    """The stored STFT kernels must be the Hann-windowed DFT our FFT front end computes."""
    missing = [k for k in STFT_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{source}: missing keys: {', '.join(missing)}")
    for key, want in zip(STFT_KEYS, model.audio_tower.frontend.dft_kernels()):
        got = state[key]
        if tuple(got.shape) != tuple(want.shape) or (got.float() - want).abs().max() > 1e-4:
            raise CheckpointError(f"{source}: {key} is not the Hann-windowed DFT this front end computes")


def map_key(key: str) -> str | None:
    for old, new in _PREFIXES:
        if key.startswith(old):
            return new + key[len(old):]
    return None


def msclap_name(key: str) -> str:
    """Our key → the 2023 file's name for it (for error messages)."""
    for old, new in _PREFIXES:
        if key.startswith(new):
            return old + key[len(new):]
    return key


def to_project_state(model: ClapModel, state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Rename the file's keys to ours, after checking the keys we compute instead of storing."""
    _check_stft(model, state, source)
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key in STFT_KEYS:
            continue
        if is_gpt2_buffer(key):
            _check_gpt2_buffer(key, value, source)
            continue
        new = map_key(key)
        if new is None:
            unknown.append(key)
        else:
            mapped[new] = value
    if unknown:
        from .checkpoints import _key_list

        raise CheckpointError(f"{source}: {_key_list('unexpected', sorted(unknown))}")
    return mapped


def load(path: Path, state: dict[str, torch.Tensor], isolate_text: bool = False) -> ClapModel:
    """A `ClapModel` with the 2023 file's weights, every key accounted for."""
    from .checkpoints import TextTowerSource, _new_model, _text_width

    config = msclap_2023_config()
    source = TextTowerSource(config.text, str(path), "msclap-2023")
    width = _text_width(state, TEXT_WIDTH_KEY, str(path)) if isolate_text else None
    model = _new_model(config, source, width)
    load_state(model, state, str(path), isolate_text)
    return model.eval()


def load_state(model: ClapModel, state: Mapping[str, torch.Tensor], source: str, isolate_text: bool = False) -> None:
    """Strictly load a 2023-layout state dict; errors name the keys as the file names them."""
    from .checkpoints import _load_state

    _load_state(model, to_project_state(model, state, source), source, [], isolate_text, file_name=msclap_name)
