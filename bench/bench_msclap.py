"""Speed of audio embedding against Microsoft's msclap, same random weights, same run, CPU.

    python -m bench.bench_msclap [--repeats N] [--threads T] [--onnx]     (from the repository root)

Prints one table: seconds per call for 5-s clips at batch 1 and 8, msclap vs ours, the ratio,
and the parity of the two outputs (so a speed-up that breaks the numbers shows at once).
`--onnx` adds the same for `clap_core.onnx_model` (the audio path exported and run by ONNX Runtime).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "test")]  # clap_core, and msclap's reference built on Microsoft's code

from clap_core import load_model, load_torch_model  # noqa: E402
from references.msclap_reference import build_msclap_2022  # noqa: E402

from bench.timing import start_run, time_call  # noqa: E402


def _parity(got: torch.Tensor, expected: torch.Tensor) -> dict[str, float]:
    return dict(min_cosine=F.cosine_similarity(got, expected).min().item(),
                max_abs_diff=(got - expected).abs().max().item())


def run(batches: tuple[int, ...] = (1, 8), repeats: int = 5, seed: int = 0, onnx: bool = False) -> list[dict]:
    reference = build_msclap_2022(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "CLAP_weights_2022.pth"
        torch.save({"model": reference.state_dict()}, str(path))
        ours = load_torch_model(path)
        exported = load_model(path, runtime="onnx") if onnx else None
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for batch in batches:
        clips = 0.1 * torch.randn(batch, 5 * 44100, generator=generator)

        def run_reference() -> torch.Tensor:
            with torch.no_grad():
                return reference.audio_encoder(clips)[0]

        def run_ours() -> torch.Tensor:
            return ours.embed_audio(clips, 44100)

        (ref_s, ref_cpu), (ours_s, ours_cpu) = time_call(run_reference, repeats), time_call(run_ours, repeats)
        expected = run_reference()
        row = dict(batch=batch, msclap_s=ref_s, ours_s=ours_s, ratio=ours_s / ref_s, msclap_cpu_s=ref_cpu,
                   ours_cpu_s=ours_cpu, cpu_ratio=ours_cpu / ref_cpu, **_parity(run_ours(), expected))
        if exported is not None:
            def run_onnx() -> torch.Tensor:
                return torch.from_numpy(exported.embed_audio(clips.numpy(), 44100))

            onnx_s, _ = time_call(run_onnx, repeats)
            row["onnx"] = dict(seconds=onnx_s, ratio=onnx_s / ref_s, **_parity(run_onnx(), expected))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_msclap", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--onnx", action="store_true", help="also time the ONNX Runtime export (onnx_model)")
    args = parser.parse_args(argv)
    start_run(args.threads, f"5-s clips at 44.1 kHz, median of {args.repeats}")
    print(f"{'batch':>5} {'msclap s':>9} {'ours s':>8} {'ours/msclap':>11} {'CPU ratio':>9} "
          f"{'min cos':>9} {'max |diff|':>10}")
    rows = run(repeats=args.repeats, onnx=args.onnx)
    for row in rows:
        print(f"{row['batch']:>5} {row['msclap_s']:>9.3f} {row['ours_s']:>8.3f} {row['ratio']:>11.2f} "
              f"{row['cpu_ratio']:>9.2f} {row['min_cosine']:>9.6f} {row['max_abs_diff']:>10.2e}")
    for row in rows if args.onnx else []:
        o = row["onnx"]
        print(f"ONNX Runtime, batch {row['batch']}: {o['seconds']:.3f} s, onnx/msclap {o['ratio']:.2f}, "
              f"min cos {o['min_cosine']:.6f}, max |diff| {o['max_abs_diff']:.2e}")
    print(f"load average after: {os.getloadavg()[0]:.2f} (above ~2 on 2 cores, other work skews the timings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
