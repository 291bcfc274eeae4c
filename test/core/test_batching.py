"""Batched, prefetched file embedding equals one file, one window at a time, to float rounding.

Not bit for bit: a matrix product (the projection, YAMNet's pooling) rounds a row differently with
another number of rows beside it (measured 2026-12-03 on sounds45: up to 7.5e-8 on an embedding
component of the default model, cosine 1 − 1e-13); `TOL` leaves ten times that. The reference embeds each file alone with one window per model call and no worker thread; the
batched path pools windows of consecutive files (and an unreadable file among them) into larger
calls while a worker decodes ahead. Checked on the default model (YAMNet in ONNX Runtime) and on
a small CNN14 (which the factory runs in ONNX Runtime).
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from clap_core import load_model
from clap_core.errors import AudioFileError
from clap_core.inference import embed_file, embed_files
from clap_core.prefetch import prefetched

FILES = ("HammerMetal/HammerMetal01.flac", "ChoppingVegetables/chopVeg01.flac", "BicycleBell/bikeBell01.flac",
         "Vacuum/Vacuum01.flac", "DroppingStones/droppingStones01.flac", "WaterSplash/WaterSplashing02.flac")


TOL = 1e-6  # largest |difference| of a unit embedding's component


def test_prefetched_keeps_order_raises_where_it_failed_and_stops() -> None:
    def items():
        yield from range(5)
        raise AudioFileError("item 5 unreadable")

    seen = []
    with pytest.raises(AudioFileError, match="item 5"):
        for x in prefetched(items(), depth=2):
            seen.append(x)
    assert seen == [0, 1, 2, 3, 4]
    workers = threading.active_count()
    gen = prefetched(iter(range(10_000)), depth=3)
    assert next(gen) == 0
    gen.close()  # the consumer leaves early: the worker must not stay blocked on a full queue
    assert threading.active_count() == workers
    assert list(prefetched(range(4), depth=0)) == [0, 1, 2, 3]


def _paths(sounds45, tmp_path) -> list:
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"fLaC not really")
    paths = [sounds45 / f for f in FILES]
    return paths[:2] + [broken] + paths[2:]


@pytest.mark.parametrize("weights", ["default", "tiny"])
def test_batched_equals_one_window_at_a_time(weights, sounds45, tmp_path, tiny_model_dir, default_weights) -> None:
    model = load_model(default_weights if weights == "default" else tiny_model_dir)
    paths = _paths(sounds45, tmp_path)
    batched = list(embed_files(model, paths, batch_size=7, prefetch=2))
    assert [p for p, _ in batched] == paths
    worst = 0.0
    for path, emb in batched:
        if path.name == "broken.flac":
            assert isinstance(emb, AudioFileError)
            with pytest.raises(AudioFileError):
                embed_file(model, path, batch_size=1)
        else:
            worst = max(worst, float(np.abs(emb - embed_file(model, path, batch_size=1)).max()))
    print(f"{weights}: largest difference batched vs one window per call {worst:.2e}")
    assert worst <= TOL
