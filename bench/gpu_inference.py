"""Inference on a CUDA GPU, one prepared run: parity with the CPU, precisions, replay and clap-eval.

    python bench/gpu_inference.py [--sounds45 PATH] [--families default,cnn14-2022,htsat-2023,laion]

1. parity, per family: fp32 embeddings of `--clips` sounds45 windows on the GPU vs the CPU, same
   weights (TF32 off: true fp32); each must keep cosine ≥ 0.99999 (also printed with TF32 on,
   torch's default for convolutions);
2. bench/precision.py's table on the GPU: ms per window at batch 1 and 32, cosine to GPU fp32 for
   fp32 / bf16 / fp16, and the default model's zero-shot decisions;
3. node-engine replay of the test bags (`clap_ros.replay`, the node's PredicateEngine) with the
   default model on the GPU and the CPU: real-time factor and the largest score difference;
4. `clap-eval zeroshot` on sounds45's labels.csv, on the GPU and the CPU: accuracy and clips/s.

The default model and CNN14 use their weights as bench/precision.py builds them (shipped / random
of the real size). Meant to finish in < 8 min on an H100/H200; exits 2 with one line when torch
sees no CUDA device, 1 when a parity check fails. docs/core.md quotes its output.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import precision as table  # noqa: E402  (bench/precision.py)

from clap_core import load_model, load_torch_model  # noqa: E402
from clap_core.precision import PRECISIONS, cpu_description  # noqa: E402

PARITY = 0.99999
BAGS = ROOT / "test" / "bags" / "data"
BAG_CONFIG = ROOT / "test" / "bags" / "predicates.yaml"


def parity(weights: str, everything: list, n_clips: int, gpu: str) -> tuple[float, float]:
    """(min cosine GPU vs CPU with TF32 off, the same with TF32 on) over `n_clips` windows."""
    model = load_torch_model(weights, device="cpu")
    batch = table.windows(model, [p for p, _ in table.pick(everything, n_clips)])
    cpu = model.embed_audio(batch, model.sample_rate)
    model.to(gpu)
    out = []
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        out.append(F.cosine_similarity(model.embed_audio(batch, model.sample_rate).cpu(), cpu).min().item())
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    return out[0], out[1]


def replay_bags(device: str) -> tuple[float, list[list[float]]]:
    """Real-time factor over all test bags and every window's scores, default model on `device`."""
    from clap_core.predicates import PredicateEngine, load_predicate_config
    from clap_ros.replay import ReplayStats, open_source, replay

    engine = PredicateEngine(load_model("default", device=device), load_predicate_config(BAG_CONFIG),
                             window_s=5.0, hop_s=0.5)
    bags = sorted(p for p in BAGS.iterdir() if p.is_dir())
    list(replay(engine, open_source(bags[0])))  # warm-up
    audio_s, scores, start = 0.0, [], time.perf_counter()
    for bag in bags:
        stats = ReplayStats()
        scores += [list(map(float, r.scores)) for r in replay(engine, open_source(bag), stats)]
        audio_s += stats.audio_s
    return audio_s / (time.perf_counter() - start), scores


def clap_eval(manifest: Path, device: str) -> tuple[float, float]:
    """(accuracy, clips/s) of `clap-eval zeroshot` with the default model on `device`."""
    cmd = [sys.executable, "-m", "clap_core.cli.evaluate", "zeroshot", "--manifest", str(manifest), "--json",
           "--device", device]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"clap-eval failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    result = json.loads(done.stdout)
    return result["accuracy"], result["n"] / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sounds45", type=Path, default=table.SOUNDS45)
    ap.add_argument("--families", default=",".join(table.FAMILIES))
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--dry-run-on-cpu", action="store_true",
                    help="the CPU stands in for the GPU: checks the script's steps, measures nothing")
    args = ap.parse_args(argv)
    gpu = "cpu" if args.dry_run_on_cpu else "cuda"
    if gpu == "cuda" and not torch.cuda.is_available():
        print(f"bench/gpu_inference.py: torch {torch.__version__} sees no CUDA device here "
              f"(CUDA build: {torch.version.cuda or 'none'}); run it on a machine with an NVIDIA GPU",
              file=sys.stderr)
        return 2
    everything = table.sounds45(args.sounds45)
    name = torch.cuda.get_device_name(0) if gpu == "cuda" else "none (--dry-run-on-cpu)"
    print(f"GPU: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}; "
          f"CPU: {cpu_description()}, {torch.get_num_threads()} torch threads", flush=True)
    failed, rows = [], []
    for family in args.families.split(","):
        with tempfile.TemporaryDirectory(prefix="clap-gpu-") as tmp:
            weights = table.family_weights(family, Path(tmp))
            exact, tf32 = parity(weights, everything, args.clips, gpu)
            print(f"parity {family:<11} GPU vs CPU fp32 min cos {exact:.7f} (TF32 on: {tf32:.7f})  "
                  f"{'ok' if exact >= PARITY else 'FAILS'} (≥ {PARITY})", flush=True)
            if exact < PARITY:
                failed.append(family)
            rows += table.run_family(family, weights, list(PRECISIONS), gpu, everything, args.clips)
    print(f"\nfamily      prec  b1 ms/win b{args.clips} ms/win  min cos   mean cos  (GPU; cosine to GPU fp32)")
    print("\n".join(rows), flush=True)
    gpu_speed, gpu_scores = replay_bags(gpu)
    speed, scores = replay_bags("cpu")
    print(f"replay (node engine, default model, test bags): {gpu_speed:.1f}x real time on {gpu}, "
          f"{speed:.1f}x on cpu", flush=True)
    diff = max(abs(a - b) for g, c in zip(gpu_scores, scores) for a, b in zip(g, c))
    print(f"replay scores GPU vs CPU: {len(scores)} windows, max |score difference| {diff:.2e}")
    for device in (gpu, "cpu"):
        accuracy, speed = clap_eval(args.sounds45 / "labels.csv", device)
        print(f"clap-eval zeroshot sounds45 on {device}: accuracy {accuracy:.1%}, {speed:.1f} clips/s "
              "(process start and model load included)", flush=True)
    print("parity: " + ("FAILED for " + ", ".join(failed) if failed else "every family ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
