"""Reading and writing weights: the project's format, and the one entry that reads any layout.

Checkpoints are data, never code: pickles load with `weights_only=True`, and every key must be
accounted for — a missing or unexpected key is an error that lists them (`state_loading`).

Project format: a folder with `config.json` (the `ModelConfig`) and `model.safetensors`. Tower
weights that come from an installed package (`weights_from_package`) are not stored. Microsoft's
layouts live in `msclap_2022` and `msclap_2023`, LAION-CLAP folders in `laion`.

`load_checkpoint` returns the torch module; most code loads through `clap_core.factory` instead.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from .config import ModelConfig
from .errors import CheckpointError, ConfigError
from .model import ClapModel
from .state_loading import load_state, new_model, text_width
from .towers.text_source import TextTowerSource
from .weights_files import read_safetensors, read_torch_checkpoint

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def _package_prefixes(config: ModelConfig) -> list[str]:
    """State-dict prefixes whose weights come from installed packages, not from the checkpoint."""
    prefixes = []
    if config.audio.weights_from_package:
        prefixes.append("audio_tower.")
    if config.text.weights_from_package:
        prefixes.append("text_tower.")
    return prefixes


def save_checkpoint(model: ClapModel, directory: str | Path) -> Path:
    """Write `config.json` + `model.safetensors` into `directory` (created if needed)."""
    if model.compacted:
        raise CheckpointError("this model was compacted for inference and cannot be saved; load it again")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    skip = tuple(_package_prefixes(model.config))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
             if not (skip and k.startswith(skip))}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "clap_ros"})
    (directory / CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    return directory


def _read_project_config(directory: Path) -> ModelConfig:
    path = directory / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: no {CONFIG_FILE} beside the weights") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    try:
        return ModelConfig.from_dict(data)
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def _load_project(directory: Path, isolate_text: bool = False) -> ClapModel:
    config = _read_project_config(directory)
    weights = directory / WEIGHTS_FILE
    state = read_safetensors(weights)
    source = TextTowerSource(config.text, "" if config.text.weights_from_package else str(weights), "project")
    width = text_width(state, "text_projection.", str(weights)) if isolate_text else None
    model = new_model(config, source, width)
    load_state(model, state, str(weights), _package_prefixes(config), isolate_text)
    return model.eval()


def load_checkpoint(path: str | Path, isolate_text: bool = False):  # -> ClapModel | LaionClapModel
    """Any supported checkpoint: a project folder (or its model.safetensors), an MS-CLAP 2022/2023
    .pth, or a LAION-CLAP (transformers) folder, as its torch module.

    `isolate_text`: leave the text tower out of this process; `embed_text` runs it in a short-lived
    child process instead (`towers/text_source.py`). Its tensors are checked there, on first use.
    """
    path = Path(path)
    if path.is_dir():
        from .laion import is_laion_folder, load_laion  # a transformers ClapModel folder (LAION-CLAP)

        return load_laion(path) if is_laion_folder(path) else _load_project(path, isolate_text)
    if path.suffix == ".safetensors":
        return _load_project(path.parent, isolate_text)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or folder")
    state = read_torch_checkpoint(path)
    from . import msclap_2022, msclap_2023

    if msclap_2022.is_msclap_2022(state):
        return msclap_2022.load(path, state, isolate_text)
    if msclap_2023.is_msclap_2023(state):
        return msclap_2023.load(path, state, isolate_text)
    raise CheckpointError(f"{path}: unrecognised checkpoint layout (expected MS-CLAP 2022 or 2023 keys such as "
                          "audio_encoder.base.conv_block1.conv1.weight or audio_encoder.base.htsat.patch_embed"
                          ".proj.weight, or a clap_ros folder)")
