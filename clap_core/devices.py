"""Turn a `compute_device` setting into a torch.device, failing early with one clear line."""

from __future__ import annotations

import re

import torch

from clap_core.errors import ConfigError

_CHOICES = "cpu | cuda | cuda:N | auto"


def resolve_device(text: str, parameter: str = "compute_device") -> torch.device:
    """Resolve `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when torch sees one) so bad settings fail at load, not mid-run."""
    value = text.strip().lower()
    if value == "cpu":
        return torch.device("cpu")
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", value)
    if match is None:
        raise ConfigError(f"{parameter}={text!r} is not one of {_CHOICES}")
    if not torch.cuda.is_available():
        raise ConfigError(f"{parameter}={text!r}: torch sees no CUDA device here; use {parameter}=cpu or auto")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"{parameter}={text!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return torch.device("cuda", index)
