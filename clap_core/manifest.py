"""Labelled manifests (CSV with a header): `path` and `label` columns, other columns ignored."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .errors import ManifestError


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    label: str


def read_labelled_manifest(manifest: str | Path, root: str | Path | None = None) -> list[LabelledClip]:
    """Rows of a CSV manifest; relative paths are resolved against `root` (default: the CSV's folder)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: no such manifest file")
    base = Path(root) if root is not None else manifest.parent
    try:
        with manifest.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            for needed in ("path", "label"):
                if needed not in columns:
                    raise ManifestError(f"{manifest}: no '{needed}' column (found: {', '.join(columns) or 'none'})")
            rows = [_row(manifest, i + 2, row, base) for i, row in enumerate(reader)]
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ManifestError(f"{manifest}: not a readable CSV ({exc})") from None
    if not rows:
        raise ManifestError(f"{manifest}: the manifest lists no clips")
    return rows


def _row(manifest: Path, line: int, row: dict[str, str], base: Path) -> LabelledClip:
    path, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
    if not path or not label:
        raise ManifestError(f"{manifest}:{line}: empty 'path' or 'label'")
    resolved = Path(path) if Path(path).is_absolute() else base / path
    return LabelledClip(resolved, label)


def read_label_list(path: str | Path) -> list[str]:
    """One label per line; blank lines and `#` comments ignored."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such labels file") from None
    labels = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not labels:
        raise ManifestError(f"{path}: the labels file lists no labels")
    return labels
