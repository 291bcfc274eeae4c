"""Training manifests: CSV or JSONL rows → clips, each with every caption that describes it;
and the seeded train/validation hold-out."""
from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from clap_core.errors import ManifestError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus"}


@dataclass(frozen=True)
class Clip:
    """One audio file and every caption that describes it (a label yields one caption per template)."""

    path: Path
    captions: tuple[str, ...]
    label: Optional[str] = None


def read_manifest(path: str | Path, templates: Sequence[str], audio_root: str | Path | None = None) -> list[Clip]:
    """CSV (header row) or JSONL manifest → clips, one per distinct audio path.

    Columns/keys: `path` plus either `caption` (a string; JSONL may also give `captions`, a list) or
    `label` (turned into captions through `templates`). Several rows with the same path add captions.
    """
    manifest = Path(path)
    rows = _read_rows(manifest)
    root = Path(audio_root) if audio_root else manifest.parent
    by_path: dict[Path, list[str]] = {}
    labels: dict[Path, str] = {}
    for line, row in rows:
        where = f"manifest {manifest} line {line}"
        audio = _field(row, "path", where)
        captions = _captions(row, templates, where)
        resolved = Path(audio) if Path(audio).is_absolute() else root / audio
        for caption in captions:
            if caption not in by_path.setdefault(resolved, []):
                by_path[resolved].append(caption)
        if "label" in row and row["label"] not in (None, ""):
            labels.setdefault(resolved, str(row["label"]).strip())
    if not by_path:
        raise ManifestError(f"manifest {manifest}: no rows (expected a header and one row per clip)")
    return [Clip(p, tuple(c), labels.get(p)) for p, c in by_path.items()]


def read_text_lines(path: str | Path) -> list[str]:
    """Non-blank lines of a UTF-8 text file (`data.gate_texts`)."""
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"data.gate_texts: cannot read {path} ({getattr(exc, 'strerror', None) or exc})") from None
    texts = [line for line in lines if line]
    if not texts:
        raise ManifestError(f"data.gate_texts: {path} holds no texts (one per line)")
    return texts


def read_audio_list(source: str | Path) -> list[Path]:
    """Background sounds: a folder (searched recursively for audio files) or a manifest's paths."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise ManifestError(f"background folder {source}: holds no audio files "
                                f"({', '.join(sorted(AUDIO_SUFFIXES))})")
        return files
    rows = _read_rows(source, needs_text=False)
    paths = []
    for line, row in rows:
        audio = _field(row, "path", f"manifest {source} line {line}")
        paths.append(Path(audio) if Path(audio).is_absolute() else source.parent / audio)
    if not paths:
        raise ManifestError(f"manifest {source}: no rows")
    return paths


def _read_rows(manifest: Path, needs_text: bool = True) -> list[tuple[int, dict[str, Any]]]:
    if not manifest.is_file():
        raise ManifestError(f"manifest {manifest}: no such file")
    if manifest.suffix.lower() in (".jsonl", ".ndjson"):
        return _read_jsonl(manifest)
    if manifest.suffix.lower() in (".csv", ".tsv"):
        return _read_csv(manifest, needs_text)
    raise ManifestError(f"manifest {manifest}: unknown format (use .csv with a header row, or .jsonl)")


def _read_csv(manifest: Path, needs_text: bool) -> list[tuple[int, dict[str, Any]]]:
    delimiter = "\t" if manifest.suffix.lower() == ".tsv" else ","
    try:
        with manifest.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if "path" not in header:
                raise ManifestError(f"manifest {manifest}: header has no 'path' column "
                                    f"(found: {', '.join(header) or 'nothing'})")
            if needs_text and not {"caption", "label"} & set(header):
                raise ManifestError(f"manifest {manifest}: header needs a 'caption' or a 'label' column "
                                    f"(found: {', '.join(header)})")
            reader.fieldnames = header
            return [(i + 2, row) for i, row in enumerate(reader) if _has_values(row)]
    except UnicodeDecodeError:
        raise ManifestError(f"manifest {manifest}: not UTF-8 text") from None
    except csv.Error as exc:
        raise ManifestError(f"manifest {manifest}: not valid CSV ({exc})") from None


def _has_values(row: dict[str, Any]) -> bool:
    """Blank CSV lines (all fields empty) are skipped rather than reported."""
    return any(v.strip() for v in row.values() if isinstance(v, str))


def _read_jsonl(manifest: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ManifestError(f"manifest {manifest}: not UTF-8 text") from None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"manifest {manifest} line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ManifestError(f"manifest {manifest} line {number}: expected a JSON object")
        rows.append((number, row))
    return rows


def _field(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{where}: missing or empty '{key}'")
    return value.strip()


def _captions(row: dict[str, Any], templates: Sequence[str], where: str) -> list[str]:
    caption = row.get("caption", row.get("captions"))
    if isinstance(caption, str) and caption.strip():
        return [caption.strip()]
    if isinstance(caption, list) and caption and all(isinstance(c, str) and c.strip() for c in caption):
        return [c.strip() for c in caption]
    label = row.get("label")
    if isinstance(label, str) and label.strip():
        return [tpl.format(label.strip()) for tpl in templates]
    raise ManifestError(f"{where}: needs a non-empty 'caption' (or 'captions' list) or 'label'")


def split_clips(clips: list[Clip], fraction: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """Hold out a seeded random `fraction` of the clips for validation (at least one, never all)."""
    if len(clips) < 2:
        raise ManifestError(f"training manifest has {len(clips)} clip(s): need at least 2 to hold some out "
                            "for validation (or give data.val)")
    order = np.random.default_rng(seed).permutation(len(clips))
    n_val = min(len(clips) - 1, max(1, round(fraction * len(clips))))
    val = sorted(order[:n_val].tolist())
    train = sorted(order[n_val:].tolist())
    return [clips[i] for i in train], [clips[i] for i in val]
