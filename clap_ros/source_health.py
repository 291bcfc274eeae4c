"""What a source is to the node (the `AudioSource` protocol), how it reports its state
(`SourceHealth`, read by diagnostics) and how it retries (`Backoff`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from clap_core.errors import ClapError

from .audio_chunks import AudioChunk

@dataclass(frozen=True)
class SourceHealth:
    """What diagnostics report about a source; ``state`` is one of the STATE_* names."""

    kind: str
    name: str
    state: str
    message: str
    sample_rate: int = 0
    overruns: int = 0
    dropped_s: float = 0.0
    retries: int = 0
    last_audio_age_s: float | None = None
    dropped_messages: int = 0  # topic: messages from publishers other than the one followed


STATE_STARTING, STATE_RUNNING, STATE_ERROR, STATE_SILENT, STATE_STOPPED, STATE_CONFLICT = (
    "starting", "running", "error", "silent", "stopped", "conflict",  # conflict: several publishers
)


class AudioSource(Protocol):
    """What the node needs from a source."""

    def start(self) -> None: ...
    def read(self, timeout: float) -> list[AudioChunk]: ...
    def health(self) -> SourceHealth: ...
    def stop(self) -> None: ...


class SourceError(ClapError):
    """A source parameter is unusable (unknown device, bad topic layout)."""


class Backoff:
    """Retry delays that double from ``initial_s`` up to ``max_s``; reset after a success."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.initial_s, self.max_s = float(initial_s), float(max(max_s, initial_s))
        self._next = self.initial_s

    def next_delay(self) -> float:
        delay, self._next = self._next, min(self._next * 2.0, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.initial_s


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
