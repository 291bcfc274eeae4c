"""Reduced precision per model family: speed per window and closeness to fp32 on real recordings.

    python bench/precision.py [--clips 32] [--families default,cnn14-2022,htsat-2023,laion]
                              [--precisions fp32,bf16,fp16] [--device cpu] [--threads 0]

For each family and precision it prints the time per window of the model's clip length (5 s for the
default model and CNN14, 7 s HTS-AT 2023, 10 s LAION) at batch 1 (median of 3) and batch
`--clips` (32: one run), and the cosine of each clip's audio embedding to its fp32 embedding
(min and mean over `--clips` sounds45 recordings, one window each, short clips tiled). For the
default model (its real weights) it also scores all of sounds45 zero-shot (the model's template,
fp32 text embeddings — precision covers the audio path only — and a recording = unit mean of its
windows) and counts decisions that differ from fp32's. The other
families have random weights of the real size (the published weights are not available offline),
built as bench/bench_node.py builds them.

A precision is fit for the node when every family keeps min cosine ≥ 0.999 and no zero-shot
decision changes: `clap_core.precision.NODE_REFUSED` encodes the outcome (docs/core.md, the table).
Timings on a shared machine are noisy (the load average is printed); cosines are not.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "test")]  # clap_core, and the tests' seeded random checkpoints

from clap_core import load_torch_model  # noqa: E402
from clap_core.audio_io import load_audio, resample  # noqa: E402
from clap_core.clips import clip_windows  # noqa: E402
from bench.timing import start_run, time_call  # noqa: E402
from clap_core.errors import ClapError  # noqa: E402
from clap_core.precision import PRECISIONS, apply_precision  # noqa: E402

SOUNDS45 = ROOT.parent / "shared" / "data" / "sounds45"  # ../shared from the repository (--sounds45 for another)
FAMILIES = ("default", "cnn14-2022", "htsat-2023", "laion")
MIN_COSINE = 0.999


def sounds45(folder: Path) -> list[tuple[Path, str]]:
    """(path, label) of every recording, from the folder's labels.csv."""
    if not (folder / "labels.csv").is_file():
        raise ClapError(f"--sounds45: {folder} holds no labels.csv (give the sounds45 folder)")
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        return [(folder / row["path"], row["label"]) for row in csv.DictReader(f)]


def pick(rows: list, n: int) -> list:
    """`n` rows spread evenly over the (class-sorted) list, so every class has its turn."""
    idx = np.linspace(0, len(rows) - 1, num=min(n, len(rows))).round().astype(int)
    return [rows[i] for i in idx]


def windows(model, paths: list[Path]) -> torch.Tensor:
    """One window of the model's clip length per recording, at the model's rate: `[n, samples]`."""
    out = []
    for path in paths:
        wave, rate = load_audio(path)
        wave = resample(wave[None].astype(np.float32), rate, model.sample_rate)[0]
        out.append(clip_windows(wave, model.sample_rate, model.clip_seconds)[0])
    return torch.from_numpy(np.stack(out))


def family_weights(family: str, tmp: Path) -> str:
    """Weights for a family: the shipped default, or seeded random weights of the real size."""
    from references.msclap_reference import (write_msclap_checkpoint, write_random_2023_checkpoint,
                                             write_random_laion_folder)

    ranks = ROOT / ".cache" / "gpt2" / "gpt2.tiktoken"  # fetched by scripts/setup.sh
    if family != "default" and family != "cnn14-2022" and not ranks.is_file():
        raise ClapError(f"{ranks} missing: run scripts/setup.sh (GPT-2's tokenizer ranks)")
    os.environ["CLAP_WEIGHTS_DIR"] = str(tmp)  # the 2023 loader finds GPT-2's tokenizer in tmp/gpt2
    if family == "cnn14-2022":
        return str(write_msclap_checkpoint(tmp / "CLAP_weights_2022.pth", seed=0))
    if family == "htsat-2023":
        from clap_core.gpt2_bpe import write_tokenizer_files

        write_random_2023_checkpoint(tmp / "CLAP_weights_2023.pth", write_tokenizer_files(ranks, tmp / "gpt2"))
        return str(tmp / "CLAP_weights_2023.pth")
    if family == "laion":
        write_random_laion_folder(tmp / "laion", ranks, small=False)
        return str(tmp / "laion")
    return "default"


def zero_shot(model, clips: list[tuple[Path, str]], text: torch.Tensor) -> list[int]:
    """Index of the best of the unit `text` embeddings per recording (recording = unit mean of windows)."""
    picks = []
    for path, _ in clips:
        wave, rate = load_audio(path)
        emb = F.normalize(model.embed_audio(clip_windows(wave, rate, model.clip_seconds), rate), dim=-1)
        picks.append(int((F.normalize(emb.mean(0), dim=-1) @ text.T).argmax()))
    return picks


def measure(model, batch: torch.Tensor, reference: torch.Tensor) -> dict:
    """Seconds per window at batch 1 (median of 3 after a warm-up) and at the whole batch (one run,
    warmed up by the batch-1 calls: the slow 2-core case must stay within minutes), and the cosine
    of that run's embeddings to `reference` (fp32)."""
    rate = model.sample_rate
    one, _ = time_call(lambda: model.embed_audio(batch[:1], rate).cpu(), 3)  # .cpu(): waits for a GPU
    start = time.perf_counter()
    out = model.embed_audio(batch, rate).cpu()
    full = (time.perf_counter() - start) / len(batch)
    cos = F.cosine_similarity(out, reference.cpu(), dim=-1)
    return dict(b1=one, bn=full, min_cos=cos.min().item(), mean_cos=cos.mean().item())


def run_family(family: str, weights: str, precisions: list[str], device: str,
               everything: list[tuple[Path, str]], n_clips: int) -> list[str]:
    """One table row per precision (also printed as it comes)."""
    lines = []
    started = time.perf_counter()
    model = load_torch_model(weights, device=device)
    print(f"# {family}: loaded in {time.perf_counter() - started:.0f} s, window {model.clip_seconds:g} s",
          flush=True)
    batch = windows(model, [p for p, _ in pick(everything, n_clips)])
    reference = model.embed_audio(batch, model.sample_rate)
    labels = sorted({label for _, label in everything})
    text = F.normalize(model.embed_text([model.config.template.format(label) for label in labels]), dim=-1)
    decisions = zero_shot(model, everything, text) if family == "default" else None
    for name in precisions:
        try:
            apply_precision(model, name, device)
            row = measure(model, batch, reference)
        except (ClapError, RuntimeError) as exc:
            lines.append(f"{family:<11} {name:<5} not run: {str(exc).splitlines()[0][:120]}")
            continue
        verdict = ""
        if decisions is not None:
            changed = sum(a != b for a, b in zip(zero_shot(model, everything, text), decisions))
            verdict = f"  zero-shot: {changed}/{len(decisions)} decisions changed"
        fit = row["min_cos"] >= MIN_COSINE and (decisions is None or changed == 0)
        lines.append(f"{family:<11} {name:<5} {row['b1'] * 1e3:9.1f} {row['bn'] * 1e3:10.1f} "
                     f"{row['min_cos']:10.6f} {row['mean_cos']:10.6f}  {'ok' if fit else 'FAILS'}{verdict}")
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sounds45", type=Path, default=SOUNDS45, help="the sounds45 folder (labels.csv)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    start_run(args.threads, f"device {args.device}, {args.clips} sounds45 clips")
    try:
        everything = sounds45(args.sounds45)
    except ClapError as exc:
        print(exc, file=sys.stderr)
        return 2
    batch = f"b{args.clips} ms/win"
    header = (f"{'family':<11} {'prec':<5} {'b1 ms/win':>9} {batch:>10} {'min cos':>10} {'mean cos':>10}"
              f"  cos ≥ {MIN_COSINE} and decisions kept")
    print(header, flush=True)
    lines = []
    for family in args.families.split(","):
        if family not in FAMILIES:
            print(f"--families: unknown family {family!r} (known: {', '.join(FAMILIES)})", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="clap-precision-") as tmp:
            weights = family_weights(family, Path(tmp))
            lines += run_family(family, weights, args.precisions.split(","), args.device, everything, args.clips)
    print("\n" + header + "\n" + "\n".join(lines))
    print(f"load average after: {os.getloadavg()[0]:.2f} (above ~2 on 2 cores, other work skews the timings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
