"""Reading and writing weights: the project's format and Microsoft's CLAP 2022 layout.

Checkpoints are data, never code: pickles load with `weights_only=True`, and every key must be
accounted for — a missing or unexpected key is an error that lists them.

Project format: a folder with `config.json` (the `ModelConfig`) and `model.safetensors`. Tower
weights that come from an installed package (`weights_from_package`) are not stored.
"""
from __future__ import annotations

import dataclasses
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ModelConfig, TextTowerConfig, msclap_2022_config
from .errors import CheckpointError, ConfigError
from .model import ClapModel, create_model
from .projection import text_input_width
from .towers.base import TextTower
from .towers.child_text import ChildProcessTextTower
from .towers.registry import build_text_tower

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# Microsoft layout prefix → ours. Order matters: the first matching prefix wins.
_MS_PREFIXES = (
    ("audio_encoder.base.logmel_extractor.melW", "audio_tower.frontend.mel_basis"),
    ("audio_encoder.base.", "audio_tower."),
    ("audio_encoder.projection.", "audio_projection."),
    ("caption_encoder.base.", "text_tower.encoder."),
    ("caption_encoder.projection.", "text_projection."),
    ("logit_scale", "logit_scale"),
)
_MS_STFT_KEYS = ("audio_encoder.base.spectrogram_extractor.stft.conv_real.weight",
                 "audio_encoder.base.spectrogram_extractor.stft.conv_imag.weight")
_MS_POSITION_IDS = "caption_encoder.base.embeddings.position_ids"


# ---------------------------------------------------------------------------------------------
# key accounting
def _strict_load(model: ClapModel, state: Mapping[str, torch.Tensor], source: str,
                 skip_prefixes: Iterable[str] = (), file_name: Callable[[str], str] = str) -> None:
    """Load every tensor; any missing, unexpected or mis-shaped key is an error naming them
    (as the file names them, via `file_name`)."""
    skip = tuple(skip_prefixes)
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(skip)}
    missing = sorted(file_name(k) for k in set(expected) - set(state))
    unexpected = sorted(file_name(k) for k in set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source}: keys do not match the model "
                              f"({_key_list('missing', missing)}; {_key_list('unexpected', unexpected)})")
    wrong = [f"{file_name(k)} {tuple(state[k].shape)}≠{tuple(v.shape)}" for k, v in expected.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(f"{source}: tensor shapes differ from the model: {', '.join(wrong[:10])}")
    # Package-provided tensors are already in the model: merge, then load strictly.
    merged = {**model.state_dict(), **state} if skip else dict(state)
    model.load_state_dict(merged)


def _key_list(label: str, keys: list[str]) -> str:
    if not keys:
        return f"no {label} keys"
    shown = ", ".join(keys[:8]) + (f", … ({len(keys) - 8} more)" if len(keys) > 8 else "")
    return f"{len(keys)} {label}: {shown}"


def _package_prefixes(config: ModelConfig) -> list[str]:
    """State-dict prefixes whose weights come from installed packages, not from the checkpoint."""
    prefixes = []
    if config.audio.weights_from_package:
        prefixes.append("audio_tower.")
    if config.text.weights_from_package:
        prefixes.append("text_tower.")
    return prefixes


# ---------------------------------------------------------------------------------------------
# project format
def save_checkpoint(model: ClapModel, directory: str | Path) -> Path:
    """Write `config.json` + `model.safetensors` into `directory` (created if needed)."""
    if getattr(model.audio_tower, "compacted", False):
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


def _read_safetensors(path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such weights file") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _load_project(directory: Path, isolate_text: bool = False) -> ClapModel:
    config = _read_project_config(directory)
    weights = directory / WEIGHTS_FILE
    state = _read_safetensors(weights)
    source = TextTowerSource(config.text, "" if config.text.weights_from_package else str(weights), "project")
    width = _text_width(state, "text_projection.", str(weights)) if isolate_text else None
    model = _new_model(config, source, width)
    _load_state(model, state, str(weights), _package_prefixes(config), isolate_text)
    return model.eval()


@dataclass(frozen=True)
class TextTowerSource:
    """Where a model's text tower and its weights come from, as plain data. Calling it builds the
    tower: to reload it after `release_text_tower()`, or inside a child process (`isolate_text`,
    which receives it as JSON via `to_dict`), which is why this is data and not a closure."""

    config: TextTowerConfig
    path: str = ""  # the checkpoint file holding the tower's tensors; "" when a package provides them
    layout: str = "project"  # or "msclap-2022", "msclap-2023"

    def __call__(self) -> TextTower:
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

    def _tower_state(self) -> dict[str, torch.Tensor]:
        """The tower's tensors, keyed as the tower names them."""
        if self.layout == "project":
            prefix = "text_tower."
            return {k[len(prefix):]: v for k, v in _read_safetensors(Path(self.path), prefix).items()}
        from .msclap_2023 import is_gpt2_buffer  # checked when the model loaded

        prefix = "caption_encoder.base."
        return {"encoder." + k[len(prefix):]: v for k, v in read_torch_checkpoint(Path(self.path)).items()
                if k.startswith(prefix) and not is_gpt2_buffer(k)}


def _text_width(state: Mapping[str, torch.Tensor], prefix: str, where: str) -> int:
    """The text tower's output width, read from the stored text projection's first matrix or label bank."""
    width = text_input_width(state, prefix)
    if width is None:
        raise CheckpointError(f"{where}: {_key_list('missing', [prefix + 'linear1.weight'])}")
    return width


def _new_model(config: ModelConfig, source: TextTowerSource, isolated_text_width: int | None) -> ClapModel:
    """The model with its text tower in this process (reloadable from `source`), or — given the
    tower's width — with a stand-in that runs the tower in a child process when asked for text."""
    if isolated_text_width is None:
        model = create_model(config)
        model.text_tower_loader = source
        return model
    return create_model(config, text_tower=ChildProcessTextTower(source, isolated_text_width))


def _load_state(model: ClapModel, state: Mapping[str, torch.Tensor], where: str, skip: list[str],
                isolate_text: bool, file_name: Callable[[str], str] = str) -> None:
    """`_strict_load`; with the text tower isolated its tensors are left for the child to check."""
    if isolate_text:
        state = {k: v for k, v in state.items() if not k.startswith("text_tower.")}
        skip = [*skip, "text_tower."]
    _strict_load(model, state, where, skip, file_name)


# ---------------------------------------------------------------------------------------------
# Microsoft CLAP 2022 layout
def read_torch_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a `.pth` pickle, refusing anything that would run code when unpickled."""
    try:
        obj = _torch_load(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: refused — it holds objects that would run code when loaded "
                              f"(only plain tensors are accepted; {first[:200]})") from None
    except Exception as exc:  # noqa: BLE001 - garbage makes the unpickler fail in arbitrary ways
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: "
                              f"{str(exc)[:200]})") from None
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict (optionally under 'model') of tensors")
    return state


def _torch_load(path: Path) -> object:
    """Memory-mapped when the file allows it (zip format, what `torch.save` writes): the tensors the
    model keeps are copied out and the rest — BERT when the text tower is isolated — never becomes
    process memory. Older pickles load the ordinary way."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(str(path), map_location="cpu", weights_only=True)


def is_msclap_2022(state: Mapping[str, torch.Tensor]) -> bool:
    """Microsoft's layout: CNN14 under audio_encoder.base, BERT under caption_encoder.base."""
    return "audio_encoder.base.conv_block1.conv1.weight" in state and any(
        k.startswith("caption_encoder.base.") for k in state)


def _map_msclap_key(key: str) -> str | None:
    for old, new in _MS_PREFIXES:
        if key.startswith(old):
            return new + key[len(old):]
    return None


def _msclap_name(key: str) -> str:
    """Our key → Microsoft's name for it (for error messages and export)."""
    for old, new in _MS_PREFIXES:
        if key.startswith(new):
            return old + key[len(new):]
    raise CheckpointError(f"no MS-CLAP name for key {key}")


def _check_stft_kernels(model: ClapModel, state: Mapping[str, torch.Tensor], source: str) -> None:
    """The published front end is a convolution with a windowed DFT; we compute the same with an
    FFT, so we check the stored kernels really are that DFT rather than ignoring them."""
    real, imag = model.audio_tower.frontend.dft_kernels()
    for key, want in zip(_MS_STFT_KEYS, (real, imag)):
        got = state[key]
        if tuple(got.shape) != tuple(want.shape) or (got.float() - want).abs().max() > 1e-4:
            raise CheckpointError(f"{source}: {key} is not the Hann-windowed DFT this front end computes")


def msclap_to_project_state(model: ClapModel, state: Mapping[str, torch.Tensor],
                            source: str) -> dict[str, torch.Tensor]:
    """Rename Microsoft's keys to ours; verify the keys we compute instead of storing."""
    missing_stft = [k for k in _MS_STFT_KEYS if k not in state]
    if missing_stft:
        raise CheckpointError(f"{source}: {_key_list('missing', missing_stft)}")
    _check_stft_kernels(model, state, source)
    ours = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key in _MS_STFT_KEYS:
            continue
        if key == _MS_POSITION_IDS and "text_tower.encoder.embeddings.position_ids" not in ours:
            if not torch.equal(value.flatten().long(), torch.arange(value.numel())):
                raise CheckpointError(f"{source}: {key} is not 0..{value.numel() - 1}")
            continue
        new = _map_msclap_key(key)
        if new is None:
            unknown.append(key)
        else:
            mapped[new] = value
    if unknown:
        raise CheckpointError(f"{source}: {_key_list('unexpected', sorted(unknown))}")
    return mapped


def _load_msclap(path: Path, state: dict[str, torch.Tensor], isolate_text: bool = False) -> ClapModel:
    config = msclap_2022_config()
    source = TextTowerSource(config.text, str(path), "msclap-2022")
    width = _text_width(state, "caption_encoder.projection.", str(path)) if isolate_text else None
    model = _new_model(config, source, width)
    mapped = msclap_to_project_state(model, state, str(path))
    _load_state(model, mapped, str(path), [], isolate_text, file_name=_msclap_name)
    return model.eval()


def project_to_msclap_state(model: ClapModel) -> dict[str, torch.Tensor]:
    """The model's weights in Microsoft's layout (for their code or other tools)."""
    if model.config.audio.kind != "cnn14" or model.text_tower is None:
        raise CheckpointError("only a CNN14 model with its text tower loaded can be written in MS-CLAP layout")
    out = {_msclap_name(key): value.detach().cpu().clone() for key, value in model.state_dict().items()}
    real, imag = model.audio_tower.frontend.dft_kernels()
    out[_MS_STFT_KEYS[0]], out[_MS_STFT_KEYS[1]] = real, imag
    return out


def save_msclap_checkpoint(model: ClapModel, path: str | Path) -> Path:
    """Write `{"model": state_dict}` as Microsoft's loader expects."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": project_to_msclap_state(model)}, str(path))
    return path


# ---------------------------------------------------------------------------------------------
def load_checkpoint(path: str | Path, isolate_text: bool = False) -> ClapModel:
    """Any supported checkpoint: a project folder (or its model.safetensors), or an MS-CLAP 2022/2023 .pth.

    `isolate_text`: leave the text tower out of this process; `embed_text` runs it in a short-lived
    child process instead (see `ChildProcessTextTower`). Its tensors are checked there, on first use.
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
    if is_msclap_2022(state):
        return _load_msclap(path, state, isolate_text)
    from . import msclap_2023

    if msclap_2023.is_msclap_2023(state):
        return msclap_2023.load(path, state, isolate_text)
    raise CheckpointError(f"{path}: unrecognised checkpoint layout (expected MS-CLAP 2022 or 2023 keys such as "
                          "audio_encoder.base.conv_block1.conv1.weight or audio_encoder.base.htsat.patch_embed"
                          ".proj.weight, or a clap_ros folder)")
