"""The ONNX export's folder: temporary and removed, or cached by the weights' checksum; never half-made.

The first tests drive `export_folder` with small real exports (a function writing files) to check
the folder's life cycle on every exit path; the last exports the suite's tiny real model twice
through `load_onnx_model` and changes its weights in between.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clap_core.onnx_cache import PARTIAL, SOURCE, export_folder, remove_orphans, weights_digest


def _weights(tmp_path: Path, content: bytes = b"weights v1") -> Path:
    path = tmp_path / "w" / "model.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _export_counting(calls: list[Path]):
    def export(folder: Path) -> None:
        calls.append(folder)
        (folder / "audio.onnx").write_bytes(b"graph")
        (folder / "audio.onnx.data").write_bytes(os.urandom(1000))
    return export


def test_without_a_cache_the_folder_is_gone_after_use_and_after_an_interrupted_export(tmp_path) -> None:
    weights, calls = _weights(tmp_path), []
    with export_folder(str(weights), None, _export_counting(calls)) as folder:
        assert (folder / "audio.onnx.data").is_file()
    assert not folder.exists()

    def interrupted(folder: Path) -> None:
        (folder / "audio.onnx.data").write_bytes(b"x" * 1000)
        calls.append(folder)
        raise KeyboardInterrupt  # what the node raises on SIGINT/SIGTERM during start-up

    with pytest.raises(KeyboardInterrupt):
        with export_folder(str(weights), None, interrupted):
            pass
    assert not calls[-1].exists()


def test_the_cache_is_reused_and_a_changed_file_is_exported_again(tmp_path) -> None:
    weights, calls, cache = _weights(tmp_path), [], tmp_path / "cache"
    with export_folder(str(weights), cache, _export_counting(calls)) as first:
        data = (first / "audio.onnx.data").read_bytes()
    with export_folder(str(weights), cache, _export_counting(calls)) as again:
        assert again == first and (again / "audio.onnx.data").read_bytes() == data
    assert len(calls) == 1, "the second load used the cache"
    assert json.loads((first / SOURCE).read_text())["weights"] == str(weights.resolve())

    weights.write_bytes(b"weights v2")  # same path, same size, new contents
    with export_folder(str(weights), cache, _export_counting(calls)) as changed:
        assert changed != first and (changed / "audio.onnx.data").read_bytes() != data
    assert len(calls) == 2 and not first.exists(), "the stale entry is removed"
    assert sorted(p.name for p in cache.iterdir()) == [changed.name]


def test_an_interrupted_cached_export_leaves_no_entry_and_no_partial_folder(tmp_path) -> None:
    weights, cache = _weights(tmp_path), tmp_path / "cache"

    def interrupted(folder: Path) -> None:
        (folder / "audio.onnx.data").write_bytes(b"x" * 1000)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with export_folder(str(weights), cache, interrupted):
            pass
    assert list(cache.iterdir()) == []


def test_partial_folders_of_killed_processes_are_removed(tmp_path) -> None:
    cache = tmp_path / "cache"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = cache / f"{PARTIAL}{dead.stdout.strip()}-abc"  # as SIGKILL mid-export leaves it
    live = cache / f"{PARTIAL}{os.getpid()}-def"  # an export in progress in a live process
    for folder in (orphan, live):
        folder.mkdir(parents=True)
        (folder / "audio.onnx.data").write_bytes(b"x")
    remove_orphans(cache)
    assert not orphan.exists() and live.exists()


def test_digest_covers_every_file_of_a_weights_folder(tmp_path) -> None:
    folder = tmp_path / "model"
    (folder / "text").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"a")
    first = weights_digest(folder)
    (folder / "model.safetensors").write_bytes(b"b")
    second = weights_digest(folder)
    (folder / "config.json").write_text('{"x": 1}')
    assert len({first, second, weights_digest(folder)}) == 3


def test_load_onnx_model_caches_the_real_export_per_weights(tmp_path, tiny_model_dir) -> None:
    """Real exports of the tiny model: reused while the weights stay, redone when they change."""
    import shutil

    import torch

    from clap_core.checkpoints import save_checkpoint
    from clap_core.model import create_model
    from clap_core.onnx_model import load_onnx_model

    weights, cache = tmp_path / "tiny", tmp_path / "cache"
    shutil.copytree(tiny_model_dir, weights)
    x = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32) * 0.1
    first = load_onnx_model(weights, threads=1, cache_dir=cache).embed_audio(x, 16000)
    (entry,) = cache.iterdir()
    stamp = (entry / "audio.onnx.data").stat().st_mtime_ns
    again = load_onnx_model(weights, threads=1, cache_dir=cache).embed_audio(x, 16000)
    assert np.array_equal(first, again) and (entry / "audio.onnx.data").stat().st_mtime_ns == stamp

    config = json.loads((weights / "config.json").read_text())
    torch.manual_seed(1)
    from clap_core.config import ModelConfig

    save_checkpoint(create_model(ModelConfig.from_dict(config)), weights)  # new random weights, same path
    changed = load_onnx_model(weights, threads=1, cache_dir=cache).embed_audio(x, 16000)
    assert not np.allclose(first, changed, atol=1e-3), "a stale export would give the old embedding"
    assert [p.name for p in cache.iterdir()] != [entry.name] and len(list(cache.iterdir())) == 1


def test_temporary_folders_of_killed_processes_are_removed_by_the_next_export(tmp_path, monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's own TMPDIR
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f"clap-onnx-{dead.stdout.strip()}-xyz"
    orphan.mkdir()
    (orphan / "audio.onnx.data").write_bytes(b"x" * 1000)
    with export_folder(str(_weights(tmp_path)), None, _export_counting([])) as folder:
        assert folder.name.startswith(f"clap-onnx-{os.getpid()}-")
    assert not orphan.exists() and not folder.exists()
