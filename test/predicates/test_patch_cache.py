"""Patch results reused across hops (YAMNet): the same outputs as recomputing, bit for bit.

The reference is the same engine with the cache off (every patch recomputed); both see the same
long stream of real sounds45 recordings at 44.1 kHz with a short gap (filled), a long gap (new
segment), a reset and a hot reload. At a hop that is a multiple of YAMNet's 0.48-s patch hop some
patches recur bit for bit and are reused; at 0.5 s none does (the patch grid moves by 20 ms a hop)
and the cache only misses.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from clap_core.audio_io import load_audio
from clap_core.torch_runtime import TorchInferenceModel
from clap_core.predicates import PredicateEngine, parse_predicate_config
from clap_core.towers.patch_cache import PatchCache

CLIPS = ("Vacuum/Vacuum01", "BicycleBell/bikeBell01", "WaterSplash/WaterSplashing02", "Chainsaw/chainsaw01",
         "ChoppingVegetables/chopVeg01", "HairDryer/HairDryer01")  # 31 s
CFG = {"predicates": {"water": {"prompt": "water splashing"},
                      "bell": {"prompt": "a bicycle bell ringing", "kind": "event"},
                      "motor": {"prompt": "a chainsaw", "pooling": "whole"}}}
RELOADED = {"predicates": {"vacuum": {"prompt": "a vacuum cleaner"}, "bell": {"prompt": "a bell", "kind": "event"}}}


def test_patch_cache_computes_each_new_input_once() -> None:
    calls: list[int] = []

    def double(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(x))
        return x * 2.0, x.sum(axis=1)

    cache = PatchCache(entries=3)
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    batch = a[[0, 1, 0, 2]]  # a repeated row is computed once
    out = cache.run(batch, double)
    assert calls == [3] and np.array_equal(out[0], batch * 2.0) and np.array_equal(out[1], batch.sum(axis=1))
    out = cache.run(a[[2, 3]], double)  # row 2 stored, row 3 new; row 1 (least recently used) evicted
    assert calls == [3, 1] and np.array_equal(out[0], a[[2, 3]] * 2.0)
    cache.run(a[[1]], double)
    assert calls == [3, 1, 1] and (cache.hits, cache.misses) == (2, 5)


def _stream(sounds45: Path) -> tuple[np.ndarray, int]:
    waves = [load_audio(next(sounds45.glob(f"{c}.*"))) for c in CLIPS]
    assert {sr for _, sr in waves} == {44100}
    return np.concatenate([w for w, _ in waves]).astype(np.float32), 44100


def _drive(engine: PredicateEngine, audio: np.ndarray, sr: int) -> list:
    """0.1-s chunks; a 0.3-s gap at 8 s, a 6-s gap at 14 s, a reset at 20 s, a reload at 24 s."""
    n = sr // 10
    out, t_shift = [], 0.0
    for i in range(0, len(audio), n):
        t = i / sr
        if abs(t - 8.0) < 0.05:
            t_shift += 0.3
        if abs(t - 14.0) < 0.05:
            t_shift += 6.0
        if abs(t - 20.0) < 0.05:
            engine.reset()
        if abs(t - 24.0) < 0.05:
            engine.set_config(parse_predicate_config(RELOADED))
        out += engine.push(audio[i:i + n], sr, t + t_shift)
    return out + engine.flush()


def _rows(results: list) -> list[tuple]:
    return [(r.t_start, r.t_end, r.names, r.scores, r.values, r.fired, r.flags, r.part_start, r.part_end)
            for r in results]


@pytest.mark.parametrize("hop, reused", [(0.48, True), (0.5, False)])
def test_cached_stream_equals_recomputed(default_torch_model, sounds45, hop: float, reused: bool) -> None:
    default_model = TorchInferenceModel(default_torch_model)  # the engine's view; the tower is inspected below
    audio, sr = _stream(sounds45)
    reference = _drive(PredicateEngine(default_model, parse_predicate_config(CFG), hop_s=hop, patch_cache=0),
                       audio, sr)
    assert default_torch_model.audio_tower.patch_cache is None
    engine = PredicateEngine(default_model, parse_predicate_config(CFG), hop_s=hop)
    assert engine.patch_cache
    cached = _drive(engine, audio, sr)
    cache = default_torch_model.audio_tower.patch_cache
    flags = {f for r in reference for f in r.flags}
    assert len(reference) > 35 and {"gap"} <= flags and any(r.names[0] == "vacuum" for r in reference)
    assert _rows(cached) == _rows(reference)  # every float equal, not close
    assert (cache.hits > 0) == reused, (cache.hits, cache.misses)


def test_cached_tower_outputs_are_bit_identical(default_torch_model, sounds45) -> None:
    """Embeddings (whole and parts) of overlapping windows every 0.96 s, with and without reuse."""
    audio, sr = _stream(sounds45)
    from clap_core.audio_io import resample

    x = resample(audio, sr, 16000)[: 16000 * 15]
    windows = np.stack([x[s:s + 80000] for s in range(0, len(x) - 80000 + 1, 15360)])
    model = default_torch_model
    model.cache_patches(0)
    plain = [model.embed_audio_parts(w[None], 16000, 1.0, 0.5) for w in windows]
    assert model.cache_patches(64)
    reused = [model.embed_audio_parts(w[None], 16000, 1.0, 0.5) for w in windows]
    assert model.audio_tower.patch_cache.hits > 0
    model.cache_patches(0)
    for (w0, p0, s0), (w1, p1, s1) in zip(plain, reused):
        assert torch.equal(w0, w1) and torch.equal(p0, p1) and s0 == s1
