"""Throughput of batch embedding (what `clap-eval` runs): clips per second on a 2,000-clip manifest.

The manifest lists every sounds45 and sfx_pool recording by its path in /work/shared (nothing is
copied), repeated in order until it holds `--clips` rows. Per setting it embeds all clips and
prints clips/s and windows/s:

- `one file at a time`: each file decoded, then its windows embedded, 8 per call, no worker (the
  loop `clap-eval` ran before batching);
- `batch N + prefetch`: windows of consecutive files pooled N per model call while a worker thread
  decodes the next files (`clap_core.inference.embed_files`).

Usage:  python bench/bench_eval.py [--clips 2000] [--weights default] [--batches 8,32,128] [--device cpu]
Numbers depend on the machine and its load: quote them with the date and a quiet run.
"""
from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def write_manifest(folder: Path, clips: int) -> Path:
    """`path,label` rows of sounds45 then sfx_pool files (absolute paths), repeated to `clips` rows."""
    rows = []
    for corpus in ("sounds45", "sfx_pool"):
        with open(SHARED / corpus / "labels.csv", newline="") as f:
            rows += [(str(SHARED / corpus / r["path"]), r["label"]) for r in csv.DictReader(f)]
    if not rows:
        raise SystemExit(f"no recordings found under {SHARED}")
    out = folder / "manifest.csv"
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows(rows[i % len(rows)] for i in range(clips))
    return out


def run(model, paths: list[Path], batch: int) -> tuple[float, int]:
    """(seconds, clips embedded) for embedding every path; `batch` 0: one file at a time."""
    from clap_core.errors import AudioFileError
    from clap_core.inference import embed_file, embed_files

    t0 = time.perf_counter()
    if batch:
        done = sum(1 for _ in embed_files(model, paths, batch_size=batch))
    else:
        done = 0
        for p in paths:
            try:
                embed_file(model, p)
                done += 1
            except AudioFileError:
                pass
    return time.perf_counter() - t0, done


def count_windows(paths: list[Path], clip_s: float) -> int:
    """5-s windows `clip_windows` cuts from the files (half-window hop, one aligned to the end)."""
    import math

    import soundfile as sf

    durations = {p: sf.info(str(p)).duration for p in set(paths)}
    return sum(1 if durations[p] <= clip_s else math.ceil((durations[p] - clip_s) / (clip_s / 2)) + 1
               for p in paths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--weights", default="default")
    ap.add_argument("--batches", default="8,32,128", help="windows per model call to try with prefetch")
    ap.add_argument("--device", default="cpu", help="torch device for the model (cpu, cuda, cuda:N)")
    args = ap.parse_args()
    import torch

    from clap_core import load_model
    from clap_core.manifest import read_labelled_manifest

    model = load_model(args.weights, device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [c.path for c in read_labelled_manifest(write_manifest(Path(tmp), args.clips))]
    windows = count_windows(paths, model.clip_seconds)
    print(f"{len(paths)} clips (~{windows} 5-s windows), weights {args.weights}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}", flush=True)
    run(model, paths[:8], 8)  # warm-up: first calls allocate and pick kernels
    settings = [("one file at a time", 0)] + [(f"batch {b} + prefetch", int(b)) for b in args.batches.split(",")]
    for name, batch in settings:
        wall, done = run(model, paths, batch)
        print(f"{name:22s} {done / wall:7.1f} clips/s  {windows / wall:7.1f} windows/s  ({wall:6.1f} s)", flush=True)


if __name__ == "__main__":
    main()
