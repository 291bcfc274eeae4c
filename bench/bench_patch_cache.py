"""Patch reuse across hops (YAMNet), in process: share of patches reused and time per hop.

Streams bench_node's sounds45 audio (16 kHz, 20-ms chunks) through the engine with the default
model, once with the patch cache off (every patch recomputed) and once on, per hop; prints the
share of patches whose network input recurred bit for bit, and the engine's inference time per
window (p50, mean). The outputs of both runs are compared and must be equal.

Usage:  python bench/bench_patch_cache.py [--seconds 60] [--hops 0.48,0.5,0.96]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_node import CHUNK_S, RATE, ROOT, _audio  # noqa: E402

from clap_core import load_model  # noqa: E402
from clap_core.predicates import PredicateEngine, load_predicate_config  # noqa: E402


def stream(model, hop: float, audio: np.ndarray, entries: int) -> tuple[list, float]:
    cfg = load_predicate_config(ROOT / "config" / "predicates.yaml")
    engine = PredicateEngine(model, cfg, window_s=5.0, hop_s=hop, patch_cache=entries)
    n = int(CHUNK_S * RATE)
    t0 = time.perf_counter()
    results = [r for i in range(0, len(audio), n) for r in engine.push(audio[i:i + n], RATE, i / RATE)]
    return results, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--hops", default="0.48,0.5,0.96")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # as the node and replay run the default model
    model = load_model("default")
    audio = _audio(args.seconds)
    for hop in (float(h) for h in args.hops.split(",")):
        off, wall_off = stream(model, hop, audio, 0)
        on, wall_on = stream(model, hop, audio, 256)
        cache = model.audio_tower.patch_cache
        same = [r.scores for r in off] == [r.scores for r in on]
        share = cache.hits / max(1, cache.hits + cache.misses)
        t_off = np.array([r.inference_s for r in off]) * 1000
        t_on = np.array([r.inference_s for r in on]) * 1000
        print(f"hop {hop:4.2f} s  windows {len(on):4d}  patches reused {share:6.1%}  "
              f"inference per window p50 {np.median(t_off):5.1f} -> {np.median(t_on):5.1f} ms, "
              f"mean {t_off.mean():5.1f} -> {t_on.mean():5.1f} ms  (stream wall {wall_off:5.1f} -> {wall_on:5.1f} s)  "
              f"outputs {'equal' if same else 'DIFFER'}", flush=True)


if __name__ == "__main__":
    main()
