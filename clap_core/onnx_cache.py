"""Where the ONNX export of a checkpoint is written: a temporary folder removed once loaded, or a
cache entry keyed by the weights' checksum, so that the next start skips the export.

Exporting CNN14-size weights writes ≈ 330 MB (the graph's external data) and takes 10–20 s on two
cores. Without a cache the export goes to a temporary folder, removed on every exit Python sees
(return, exception, and SIGINT/SIGTERM, which the node turns into an exception while it starts).
With `cache_dir` it is written into `<cache_dir>/.partial-<pid>-*` and renamed into place only when
complete, so a start killed mid-export (SIGKILL: nothing runs) never leaves a half entry that a later
start would use; the next start removes partial folders whose process is gone. An entry is named by
the SHA-256 of the weights' files and `EXPORT_FORMAT`: changed weights are exported again, and the
entry made from the same weights path's old contents is removed then. Temporary folders carry their
process id too (`clap-onnx-<pid>-*`): the next export removes those of processes that are gone.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

EXPORT_FORMAT = 1  # bump when export_audio_path's output changes: entries of the old format are not used
SOURCE = "source.json"  # in a complete entry: which weights it was made from
PARTIAL = ".partial-"
TEMP = "clap-onnx-"  # temporary export folders without a cache: clap-onnx-<pid>-*


@contextmanager
def export_folder(weights: str, cache_dir: str | os.PathLike | None,
                  export: Callable[[Path], None]) -> Iterator[Path]:
    """A folder holding the export of `weights`, made by `export(folder)` unless already cached;
    without `cache_dir` the folder is temporary and gone when the `with` block ends."""
    if not cache_dir:
        remove_orphans(Path(tempfile.gettempdir()), TEMP)
        with tempfile.TemporaryDirectory(prefix=f"{TEMP}{os.getpid()}-") as tmp:
            export(Path(tmp))
            yield Path(tmp)
        return
    yield cached_export(weights, Path(cache_dir).expanduser(), export)


def cached_export(weights: str, root: Path, export: Callable[[Path], None]) -> Path:
    """The cache entry for the current contents of `weights`, exported first if missing."""
    from .weights_registry import resolve_weights

    source = resolve_weights(weights).resolve()
    root.mkdir(parents=True, exist_ok=True)
    remove_orphans(root)
    entry = root / weights_digest(source)
    if (entry / SOURCE).is_file():
        return entry
    partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{os.getpid()}-", dir=root))
    try:
        export(partial)
        (partial / SOURCE).write_text(json.dumps({"weights": str(source), "format": EXPORT_FORMAT}))
        _drop_entries_of(root, source)
        try:
            partial.rename(entry)
        except OSError:  # another start finished the same entry first: use theirs
            if not (entry / SOURCE).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return entry


def weights_digest(path: Path) -> str:
    """SHA-256 over the export format and the weights' files (names and contents)."""
    digest = hashlib.sha256(f"clap-onnx-export {EXPORT_FORMAT}\n".encode())
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(f"{file.relative_to(path) if path.is_dir() else file.name}\n".encode())
        with file.open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()[:40]


def remove_orphans(root: Path, prefix: str = PARTIAL) -> None:
    """Export folders `<prefix><pid>-*` whose process is gone (a start killed mid-export)."""
    for folder in root.glob(f"{prefix}*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _drop_entries_of(root: Path, source: Path) -> None:
    """Entries made from earlier contents of the same weights path: stale now."""
    for meta in root.glob(f"*/{SOURCE}"):
        try:
            made_from = json.loads(meta.read_text()).get("weights")
        except (OSError, ValueError):
            made_from = None
        if made_from == str(source) and not meta.parent.name.startswith(PARTIAL):
            shutil.rmtree(meta.parent, ignore_errors=True)
