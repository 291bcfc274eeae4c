"""One error family, so CLIs and the node can turn any expected failure into a one-line message."""
from __future__ import annotations


class ClapError(Exception):
    """Base for expected failures: the message names the thing at fault and what to do."""


class ConfigError(ClapError, ValueError):
    """A config field (YAML, JSON or CLI) is missing or invalid; the message names the field."""


class CheckpointError(ClapError):
    """A weights file cannot be used: missing, corrupt, unsafe, or with the wrong keys."""


class UnknownWeightsError(CheckpointError, KeyError):
    """A weights name that is neither registered nor an existing path."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class AudioFileError(ClapError):
    """An audio file is missing, unreadable or holds no usable samples."""


class ManifestError(ClapError):
    """A CSV/JSONL manifest is empty, lacks a column, or cannot be parsed."""
