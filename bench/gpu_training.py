"""`training/train.py` on a CUDA GPU: mixed precision, resume and torchrun (NCCL), same script as on CPU.

The model is the paper's architecture from scratch — CNN14 at 44.1 kHz and a BERT-base text tower
(random weights, bert-base-uncased's vocabulary) into 1024-d — trained on sounds45's labelled
recordings. Four runs, each a `python -m training.train` (or `torchrun`) subprocess:

1. 30 epochs in one go (`train.device: cuda`, `train.amp: auto` → bfloat16 autocast), Adam at the
   paper's 1e-3 for projections and temperature, 1e-4 for the towers;
2. 15 epochs, then `--resume` to 30: the resumed trajectory should follow run 1's (GPU kernels are
   not guaranteed bit-deterministic, so compare, do not expect identity);
3. `torchrun --nproc_per_node=<GPUs>` for 5 epochs: the DistributedDataParallel path on NCCL;
4. the best checkpoint of run 1 reloaded with `load_torch_model` on the GPU and on the CPU: the same
   embeddings (cosine) for real recordings.

Usage (on a CUDA machine): python bench/gpu_training.py --sounds45 PATH --vocab DIR --out DIR
`--vocab`: a folder with bert-base-uncased's `vocab.txt` (the MiniLM package's folder has it).
Prints one summary line per run; `docs/training.md` quotes a run on an H100.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 30


def _text_folder(vocab: Path, folder: Path) -> Path:
    """BERT-base's config (random init) beside bert-base-uncased's vocabulary."""
    from transformers import BertConfig

    folder.mkdir(parents=True, exist_ok=True)
    BertConfig().save_pretrained(str(folder))
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (vocab / name).exists():
            shutil.copy(vocab / name, folder / name)
    return folder


def _config(sounds45: Path, text: Path, out: Path, pretrained_text: bool) -> Path:
    import yaml

    cfg = {
        "model": {"config": {
            "name": "cnn14-bert-gpu-check",
            "audio": {"kind": "cnn14", "sample_rate": 44100,
                      "options": {"window_size": 1024, "hop_size": 320, "mel_bins": 64, "fmin": 50.0,
                                  "fmax": 14000.0, "classes_num": 0, "out_dim": 2048}},
            "text": ({"kind": "hf", "source": str(text), "pooling": "mean", "max_length": 64} if pretrained_text
                     else {"kind": "hf", "source": str(text), "pooling": "cls", "max_length": 100}),
            "embed_dim": 1024, "projection_dropout": 0.5, "clip_seconds": 5.0}},
        "data": {"train": str(sounds45 / "labels.csv"), "val_fraction": 0.2,
                 "zeroshot": str(sounds45 / "labels.csv")},
        "optim": {"lr": 1.0e-3, "tower_lr": 1.0e-4},  # the paper's rate for the projections
        "train": {"epochs": EPOCHS, "batch_size": 32, "device": "cuda", "amp": "auto", "progress": False,
                  "output_dir": str(out / "full")},
    }
    path = out / "gpu_check.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _run(args: list[str], what: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    print(f"--- {what}: exit {done.returncode}, {seconds:.1f} s", flush=True)
    print("\n".join(done.stdout.strip().splitlines()[-(40 if done.returncode else 3):]), flush=True)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed")
    return seconds


def _log(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _embedding_agreement(run: Path, sounds45: Path) -> float:
    """Lowest cosine between GPU and CPU embeddings of four real clips of the manifest, trained model."""
    import numpy as np
    import torch

    from clap_core import load_torch_model
    from clap_core.audio_io import load_audio
    from clap_core.clips import clip_windows

    with (sounds45 / "labels.csv").open(newline="") as fh:
        clips = [row["path"] for row in csv.DictReader(fh)][::16][:4]
    wave = torch.from_numpy(np.stack([clip_windows(*load_audio(sounds45 / c), 5.0)[0] for c in clips]))
    cpu = load_torch_model(run / "best").embed_audio(wave, 44100)
    gpu = load_torch_model(run / "best", device="cuda").embed_audio(wave, 44100).cpu()
    return float(torch.nn.functional.cosine_similarity(cpu, gpu, dim=-1).min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sounds45", type=Path, required=True)
    ap.add_argument("--vocab", type=Path, help="random-init BERT-base with this vocabulary as the text tower")
    ap.add_argument("--text", type=Path, help="instead: a pretrained encoder folder (e.g. MiniLM), mean-pooled")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only-one-run", action="store_true", help="skip the resume and torchrun runs")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script is for a GPU machine")
    print(f"device: {torch.cuda.get_device_name(0)} × {torch.cuda.device_count()}, torch {torch.__version__}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    text = args.text.resolve() if args.text else _text_folder(args.vocab, out / "bert-base")
    cfg = _config(args.sounds45.resolve(), text, out, pretrained_text=args.text is not None)
    train = [sys.executable, "-m", "training.train", "--config", str(cfg)]
    half = EPOCHS // 2
    timings = {"full": _run(train, f"{EPOCHS} epochs, one run")}
    if args.only_one_run:
        rows = _log(out / "full")
        print("full val loss", " → ".join(f"{float(r['val_loss']):.3f}" for r in rows[::5] + rows[-1:]),
              "| zero-shot", rows[0]["zeroshot_acc"][:5], "→", rows[-1]["zeroshot_acc"][:5])
        print("GPU vs CPU embeddings, lowest cosine:", round(_embedding_agreement(out / "full", args.sounds45), 6))
        return
    timings |= {"half": _run(train + ["--set", f"train.epochs={half}", "--set", f"train.output_dir={out / 'resumed'}"],
                            f"{half} epochs"),
               "resume": _run([sys.executable, "-m", "training.train", "--resume", str(out / "resumed"),
                               "--set", f"train.epochs={EPOCHS}"], f"resumed to {EPOCHS} epochs")}
    gpus = torch.cuda.device_count()
    timings["torchrun"] = _run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}",
                                "training/train.py", "--config", str(cfg), "--set", "train.epochs=5",
                                "--set", f"train.output_dir={out / 'ddp'}"], f"torchrun, {gpus} process(es), NCCL")
    summary = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "seconds": timings,
               "full": _log(out / "full"), "resumed": _log(out / "resumed"), "ddp": _log(out / "ddp"),
               "gpu_vs_cpu_min_cosine": _embedding_agreement(out / "full", args.sounds45.resolve())}
    for name in ("full", "resumed", "ddp"):
        rows = summary[name]
        print(name, "val loss", " → ".join(f"{float(r['val_loss']):.3f}" for r in rows[::5] + rows[-1:]),
              "| zero-shot", rows[0]["zeroshot_acc"][:5], "→", rows[-1]["zeroshot_acc"][:5],
              f"| {sum(float(r['seconds']) for r in rows[1:]) / max(1, len(rows) - 1):.2f} s/epoch")
    gap = max(abs(float(a["val_loss"]) - float(b["val_loss"])) for a, b in zip(summary["full"], summary["resumed"]))
    print(f"resumed vs one run: largest val-loss difference over {EPOCHS} epochs {gap:.2e}")
    print("GPU vs CPU embeddings, lowest cosine:", round(summary["gpu_vs_cpu_min_cosine"], 6))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
