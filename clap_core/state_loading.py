"""Putting a state dict into a `ClapModel` with every key accounted for, whatever the file's layout.

`strict_load` is the rule (a missing, unexpected or mis-shaped key is an error naming them);
`KeyMap` + `rename_keys` turn a foreign layout (MS-CLAP 2022 and 2023) into ours first, so both
layouts share one renaming loop and one check of the STFT kernels we compute instead of storing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch

from .config import ModelConfig
from .errors import CheckpointError
from .model import ClapModel, create_model
from .projection import size_gates_for, text_input_width
from .towers.child_text import ChildProcessTextTower
from .towers.text_source import TextTowerSource
from .weights_files import key_list


def strict_load(model: ClapModel, state: Mapping[str, torch.Tensor], source: str,
                skip_prefixes: Iterable[str] = (), file_name: Callable[[str], str] = str) -> None:
    """Load every tensor; any missing, unexpected or mis-shaped key is an error naming them
    (as the file names them, via `file_name`)."""
    skip = tuple(skip_prefixes)
    size_gates_for(model, state)
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(skip)}
    missing = sorted(file_name(k) for k in set(expected) - set(state))
    unexpected = sorted(file_name(k) for k in set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source}: keys do not match the model "
                              f"({key_list('missing', missing)}; {key_list('unexpected', unexpected)})")
    wrong = [f"{file_name(k)} {tuple(state[k].shape)}≠{tuple(v.shape)}" for k, v in expected.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(f"{source}: tensor shapes differ from the model: {', '.join(wrong[:10])}")
    # Package-provided tensors are already in the model: merge, then load strictly.
    merged = {**model.state_dict(), **state} if skip else dict(state)
    model.load_state_dict(merged)


def load_state(model: ClapModel, state: Mapping[str, torch.Tensor], where: str, skip: list[str],
               isolate_text: bool, file_name: Callable[[str], str] = str) -> None:
    """`strict_load`; with the text tower isolated its tensors are left for the child to check."""
    if isolate_text:
        state = {k: v for k, v in state.items() if not k.startswith("text_tower.")}
        skip = [*skip, "text_tower."]
    strict_load(model, state, where, skip, file_name)


def text_width(state: Mapping[str, torch.Tensor], prefix: str, where: str) -> int:
    """The text tower's output width, read from the stored text projection's first matrix or label bank."""
    width = text_input_width(state, prefix)
    if width is None:
        raise CheckpointError(f"{where}: {key_list('missing', [prefix + 'linear1.weight'])}")
    return width


def new_model(config: ModelConfig, source: TextTowerSource, isolated_text_width: int | None) -> ClapModel:
    """The model with its text tower in this process (reloadable from `source`), or — given the
    tower's width — with a stand-in that runs the tower in a child process when asked for text."""
    if isolated_text_width is None:
        model = create_model(config)
        model.text_tower_loader = source
        return model
    return create_model(config, text_tower=ChildProcessTextTower(source, isolated_text_width))


def load_foreign(path: Path, state: Mapping[str, torch.Tensor], config: ModelConfig, layout: str,
                 width_prefix: str, to_project_state: Callable[[ClapModel, Mapping[str, torch.Tensor], str],
                                                             dict[str, torch.Tensor]],
                 keymap: "KeyMap", isolate_text: bool) -> ClapModel:
    """A `ClapModel` from a file in a foreign `layout` (MS-CLAP 2022, 2023): renamed by
    `to_project_state`, loaded strictly, errors naming keys as the file does (`keymap`)."""
    source = TextTowerSource(config.text, str(path), layout)
    width = text_width(state, width_prefix, str(path)) if isolate_text else None
    model = new_model(config, source, width)
    load_state(model, to_project_state(model, state, str(path)), str(path), [], isolate_text,
               file_name=keymap.theirs)
    return model.eval()


@dataclass(frozen=True)
class KeyMap:
    """A foreign layout's key prefixes → ours; the first matching prefix wins."""

    prefixes: tuple[tuple[str, str], ...]

    def ours(self, key: str) -> str | None:
        for old, new in self.prefixes:
            if key.startswith(old):
                return new + key[len(old):]
        return None

    def theirs(self, key: str) -> str:
        """Our key → the file's name for it (for error messages and export); unmapped keys as they are."""
        for old, new in self.prefixes:
            if key.startswith(new):
                return old + key[len(new):]
        return key


def check_stft_kernels(model: ClapModel, state: Mapping[str, torch.Tensor], keys: tuple[str, str],
                       source: str) -> None:
    """The published front ends are a convolution with a windowed DFT; we compute the same with an
    FFT, so the stored kernels must really be that DFT rather than being ignored."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"{source}: {key_list('missing', missing)}")
    for key, want in zip(keys, model.audio_tower.frontend.dft_kernels()):
        got = state[key]
        if tuple(got.shape) != tuple(want.shape) or (got.float() - want).abs().max() > 1e-4:
            raise CheckpointError(f"{source}: {key} is not the Hann-windowed DFT this front end computes")


def rename_keys(state: Mapping[str, torch.Tensor], keymap: KeyMap, source: str,
                accounted: Callable[[str, torch.Tensor], bool]) -> dict[str, torch.Tensor]:
    """The file's tensors under our names. `accounted(key, value)` is True for keys checked and
    dropped (it raises for a bad one); any other key `keymap` cannot name is an error."""
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if accounted(key, value):
            continue
        new = keymap.ours(key)
        if new is None:
            unknown.append(key)
        else:
            mapped[new] = value
    if unknown:
        raise CheckpointError(f"{source}: {key_list('unexpected', sorted(unknown))}")
    return mapped
