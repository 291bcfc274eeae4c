"""Speed and memory of the embedded default model: ms per 5-s window at batch 1, and process RSS.

    python bench/bench_default.py [--threads 2] [--repeats 50] [--runtime auto|torch|onnx]

Runtime auto is ONNX Runtime without torch (the node's default); torch runs the torch module.

Prints one line per measurement; quote these numbers (and the machine) in docs.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clap_core import load_model  # noqa: E402


def rss_mb() -> float:
    """Current resident set size (Linux /proc), in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def time_ms(fn, repeats: int) -> tuple[float, float, float, float]:
    """Wall-clock median and 90th percentile of `repeats` calls after warm-up, and the mean CPU
    time per call (all threads). On a shared, busy machine wall-clock inflates; CPU time shows
    the work itself (on an idle 2-core machine wall-clock lies between CPU time / 2 and CPU time)."""
    for _ in range(5):
        fn()
    samples = []
    cpu = time.process_time()
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    cpu_ms = (time.process_time() - cpu) * 1000 / repeats
    return statistics.median(samples), float(np.percentile(samples, 90)), cpu_ms, min(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnx"))
    args = parser.parse_args(argv)
    if args.runtime == "torch":
        import torch

        torch.set_num_threads(args.threads)
    print(f"load average now: {' '.join(Path('/proc/loadavg').read_text().split()[:3])} on {os.cpu_count()} cores")
    base = rss_mb()
    t0 = time.perf_counter()
    model = load_model("default", runtime=args.runtime, threads=args.threads if args.runtime != "torch" else None)
    print(f"load_model('default', runtime={args.runtime!r}) -> {model.runtime}: {time.perf_counter() - t0:.1f} s; "
          f"rss {rss_mb():.0f} MiB (before: {base:.0f} MiB); torch imported: {'torch' in sys.modules}")
    rng = np.random.default_rng(0)
    for rate in (model.sample_rate, 44100):
        wave = (0.05 * rng.standard_normal((1, int(rate * model.clip_seconds)))).astype(np.float32)
        med, p90, cpu, best = time_ms(lambda: model.embed_audio(wave, rate), args.repeats)
        print(f"embed_audio, 1 × 5-s window at {rate} Hz, {args.threads} threads: median {med:.1f} ms, "
              f"p90 {p90:.1f} ms, min {best:.1f} ms, CPU {cpu:.1f} ms")
    wave = (0.05 * rng.standard_normal((8, model.sample_rate * 5))).astype(np.float32)
    med, _, cpu, _ = time_ms(lambda: model.embed_audio(wave, model.sample_rate), max(5, args.repeats // 5))
    print(f"embed_audio, batch of 8 windows: {med / 8:.1f} ms per window (CPU {cpu / 8:.1f} ms)")
    prompts = [f"This is a sound of {w}." for w in ("a dog", "rain", "a door knock", "speech", "an alarm")]
    t0 = time.perf_counter()
    model.embed_text(prompts)  # the ONNX runtime embeds in a child process: seconds, once per (re)load
    print(f"embed_text, 5 prompts, first call: {(time.perf_counter() - t0) * 1000:.0f} ms")
    print(f"rss with both towers in use: {rss_mb():.0f} MiB (peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")
    model.release_text_tower()
    import gc
    gc.collect()
    print(f"rss after release_text_tower(): {rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
