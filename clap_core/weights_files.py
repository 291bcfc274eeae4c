"""Reading weight files as plain tensors: safetensors, and `.pth` pickles that cannot run code.

Shared by every checkpoint layout (`checkpoints`, `msclap_2022`, `msclap_2023`) and by the text
tower's child process (`towers/text_source.py`), which re-reads only the tower's tensors.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import CheckpointError


def key_list(label: str, keys: list[str]) -> str:
    """'3 missing: a, b, c' (at most eight shown) or 'no missing keys', for error messages."""
    if not keys:
        return f"no {label} keys"
    shown = ", ".join(keys[:8]) + (f", … ({len(keys) - 8} more)" if len(keys) > 8 else "")
    return f"{len(keys)} {label}: {shown}"


def read_safetensors(path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """The file's tensors whose key starts with `prefix`."""
    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such weights file") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    return {k: v for k, v in state.items() if k.startswith(prefix)}


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
