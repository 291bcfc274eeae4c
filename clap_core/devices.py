"""Turn a `compute_device` setting into a device, failing early with one clear line.

`parse_device` only checks the spelling and imports nothing heavy (the torch-free ONNX path uses
it); `resolve_device` also asks torch whether that device exists.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from clap_core.errors import ConfigError

if TYPE_CHECKING:
    import torch

CHOICES = "cpu | cuda | cuda:N | auto"


def parse_device(text: str, parameter: str = "compute_device") -> str:
    """'cpu', 'auto' or 'cuda:N' for any accepted spelling; anything else is a ConfigError naming `parameter`."""
    value = str(text).strip().lower()
    if value in ("cpu", "auto"):
        return value
    match = re.fullmatch(r"cuda(?::(\d+))?", value)
    if match is None:
        raise ConfigError(f"{parameter}={text!r} is not one of {CHOICES}")
    return f"cuda:{int(match.group(1) or 0)}"


def resolve_device(text: str, parameter: str = "compute_device") -> torch.device:
    """Resolve `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when torch sees one) so bad settings fail at load, not mid-run."""
    import torch

    value = parse_device(text, parameter)
    if value == "cpu":
        return torch.device("cpu")
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"{parameter}={text!r}: torch sees no CUDA device here; use {parameter}=cpu or auto")
    index = int(value.split(":")[1])
    if index >= torch.cuda.device_count():
        raise ConfigError(f"{parameter}={text!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return torch.device("cuda", index)
