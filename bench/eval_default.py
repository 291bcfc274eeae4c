"""Honest quality numbers for the embedded default model on real recordings (sounds45).

    python bench/eval_default.py                    # shipped model + held-out classes + held-out recordings
    python bench/eval_default.py --skip-retrain     # only the shipped model (seconds)

Three numbers, because they answer different questions:
- held-out classes: the recipe is rebuilt without a fold of classes (3 folds × `--rotations`
  random partitions), then scored zero-shot on exactly those classes (11-way, chance 9 %). This is
  the number that predicts behaviour on sounds nobody trained it on.
- all 33 classes on held-out recordings: rebuilt without one recording per class (4 folds), then
  33-way on the left-out recordings (chance 3 %).
- the shipped model on every recording, 33-way: it trained on these recordings, so this is a
  sanity check, not a quality claim.
Prompts use the model's own template only (no tuning to these labels' wording).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clap_core import ClapModel, load_model  # noqa: E402
from clap_core.audio_io import clip_windows, load_audio  # noqa: E402
from clap_core.checkpoints import load_checkpoint  # noqa: E402
from training import build_default, data_default  # noqa: E402
from clap_core.manifest import LabelledClip  # noqa: E402


def clip_embedding(model: ClapModel, path: Path) -> torch.Tensor:
    """Unit mean of the unit embeddings of a recording's 5-s windows (short clips tiled)."""
    wave, rate = load_audio(path)
    windows = clip_windows(wave, rate, model.clip_seconds)
    emb = torch.nn.functional.normalize(model.embed_audio(windows, rate), dim=-1)
    return torch.nn.functional.normalize(emb.mean(dim=0), dim=-1)


def accuracy(model: ClapModel, clips: list[LabelledClip], labels: list[str]) -> float:
    """Top-1 zero-shot accuracy of `clips` among `labels` with the model's template."""
    text = model.embed_text([model.config.template.format(label) for label in labels])
    text = torch.nn.functional.normalize(text, dim=-1)
    audio = torch.stack([clip_embedding(model, c.path) for c in clips])
    predicted = (audio @ text.T).argmax(dim=1).tolist()
    return float(np.mean([labels[p] == c.label for p, c in zip(predicted, clips)]))


def class_folds(labels: list[str], n_folds: int, rotations: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    folds = []
    for _ in range(rotations):
        order = [labels[i] for i in rng.permutation(len(labels))]
        folds += [order[k::n_folds] for k in range(n_folds)]
    return folds


def recording_index(clips: list[LabelledClip]) -> list[int]:
    """0, 1, 2, … within each class, in file order: the recording folds."""
    seen: dict[str, int] = {}
    out = []
    for c in clips:
        out.append(seen.get(c.label, 0))
        seen[c.label] = out[-1] + 1
    return out


def retrained(work: Path, train: list[LabelledClip], overrides: list[str]) -> ClapModel:
    return load_checkpoint(build_default.build(work, train, overrides))


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values),
            "folds": [round(v, 4) for v in values]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, default=build_default.DEFAULT_LABELS)
    parser.add_argument("--weights", default="default", help="model for the shipped-model number")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "eval_default")
    parser.add_argument("--rotations", type=int, default=2, help="random 3-fold class partitions")
    parser.add_argument("--recording-folds", type=int, default=4)
    parser.add_argument("--skip-retrain", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="training override")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    clips = data_default.read_labels(args.labels)
    labels = sorted({c.label for c in clips})
    results: dict[str, object] = {}
    start = time.time()

    shipped = load_model(args.weights)
    results["shipped_all33_seen"] = accuracy(shipped, clips, labels)
    print(f"shipped model, 33-way on its own training recordings: {results['shipped_all33_seen']:.3f}", flush=True)
    if not args.skip_retrain:
        held = []
        for i, fold in enumerate(class_folds(labels, 3, args.rotations, seed=0)):
            model = retrained(args.work / f"classes{i}", [c for c in clips if c.label not in fold], args.overrides)
            held.append(accuracy(model, [c for c in clips if c.label in fold], sorted(fold)))
            print(f"held-out classes fold {i}: {held[-1]:.3f} ({len(fold)}-way)", flush=True)
        results["heldout_classes"] = summary(held)
        recs = recording_index(clips)
        seen = []
        for k in range(args.recording_folds):
            model = retrained(args.work / f"recordings{k}", [c for c, r in zip(clips, recs) if r != k], args.overrides)
            seen.append(accuracy(model, [c for c, r in zip(clips, recs) if r == k], labels))
            print(f"held-out recordings fold {k}: {seen[-1]:.3f} (33-way)", flush=True)
        if seen:
            results["all33_heldout_recordings"] = summary(seen)
    results["seconds"] = round(time.time() - start, 1)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
