"""Quality of the embedded default model on recordings it never trained on, beside the untrained baseline.

    python bench/eval_default.py                    # cross-corpus + class folds (retrains per fold)
    python bench/eval_default.py --skip-retrain     # cross-corpus only (the shipped model; about a minute)

Every number is printed twice: the candidate (the shipped model, or the recipe rebuilt for a fold)
and the untrained **label-space baseline** (YAMNet's class probabilities vs softmax over AudioSet's
521 labels of cos(MiniLM text, MiniLM label prompt)/0.05: the `label_space` head alone), on the
same clips and labels. Zero-shot, the model's template only, clip embedding = unit mean of the
unit 5-s window embeddings (short clips tiled).
- cross-corpus: the shipped model trains on sounds45 only, so sfx_pool is a corpus it never saw:
  its labels with at least 3 clips, N-way (noisy file-name labels; see its README);
- held-out classes: the recipe rebuilt without a third of sounds45's classes (3 folds ×
  `--rotations` random partitions), scored 11-way on those classes, and among all 33 labels (the 22
  it trained on too: a mixed label set, where a gated model compares labels in different head mixes);
- sounds45 33-way on the shipped model's own training recordings: a sanity check, not a claim.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clap_core import load_torch_model  # noqa: E402
from clap_core.audio_io import load_audio  # noqa: E402
from clap_core.clips import clip_windows  # noqa: E402
from clap_core.model import ClapModel  # noqa: E402
from clap_core.manifest import LabelledClip  # noqa: E402
from training import build_default, data_default  # noqa: E402

SFX_POOL = ROOT.parent / "shared" / "data" / "sfx_pool"
MIN_CLIPS = 3


def clip_embedding(model: ClapModel, path: Path) -> torch.Tensor:
    """Unit mean of the unit embeddings of a recording's 5-s windows (short clips tiled)."""
    wave, rate = load_audio(path)
    emb = F.normalize(model.embed_audio(clip_windows(wave, rate, model.clip_seconds), rate), dim=-1)
    return F.normalize(emb.mean(dim=0), dim=-1)


def accuracy(model: ClapModel, clips: list[LabelledClip], labels: list[str]) -> float:
    """Top-1 zero-shot accuracy of `clips` among `labels` with the model's template."""
    text = F.normalize(model.embed_text([model.config.template.format(label) for label in labels]), dim=-1)
    audio = torch.stack([clip_embedding(model, c.path) for c in clips])
    predicted = (audio @ text.T).argmax(dim=1).tolist()
    return float(np.mean([labels[p] == c.label for p, c in zip(predicted, clips)]))


def sfx_pool_clips(min_clips: int = MIN_CLIPS) -> list[LabelledClip]:
    """sfx_pool clips whose label has at least `min_clips` clips (read from its labels.csv)."""
    with open(SFX_POOL / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    counts = Counter(r["label"] for r in rows)
    return [LabelledClip((SFX_POOL / r["path"]).resolve(), r["label"]) for r in rows if counts[r["label"]] >= min_clips]


def both(candidate: ClapModel, clips: list[LabelledClip], labels: list[str]) -> dict[str, float]:
    """The candidate's and the untrained baseline's accuracy on the same clips and labels."""
    return {"candidate": round(accuracy(candidate, clips, labels), 4),
            "label_space_baseline": round(accuracy(build_default.label_space_model(candidate), clips, labels), 4)}


def class_folds(labels: list[str], n_folds: int, rotations: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    folds = []
    for _ in range(rotations):
        order = [labels[i] for i in rng.permutation(len(labels))]
        folds += [order[k::n_folds] for k in range(n_folds)]
    return folds


def summary(rows: list[dict[str, float]]) -> dict[str, object]:
    out: dict[str, object] = {"folds": rows}
    for key in ("candidate", "label_space_baseline"):
        values = [r[key] for r in rows]
        out[key] = {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, default=build_default.DEFAULT_LABELS)
    parser.add_argument("--weights", default="default", help="the shipped model to evaluate")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "eval_default")
    parser.add_argument("--rotations", type=int, default=1, help="random 3-fold class partitions")
    parser.add_argument("--skip-retrain", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="training override")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    start = time.time()
    clips = data_default.read_labels(args.labels)
    labels = sorted({c.label for c in clips})
    shipped = load_torch_model(args.weights)
    results: dict[str, object] = {}

    pool = sfx_pool_clips()
    results["cross_corpus_sfx_pool"] = {**both(shipped, pool, sorted({c.label for c in pool})),
                                        "clips": len(pool), "ways": len({c.label for c in pool})}
    print(f"cross-corpus, sfx_pool {results['cross_corpus_sfx_pool']}", flush=True)
    results["sounds45_seen"] = both(shipped, clips, labels)
    print(f"sounds45 33-way, shipped model's own training recordings: {results['sounds45_seen']}", flush=True)
    if not args.skip_retrain:
        rows, mixed = [], []
        for i, fold in enumerate(class_folds(labels, 3, args.rotations, seed=0)):
            work = args.work / f"classes{i}"
            model = load_torch_model(build_default.build(work, [c for c in clips if c.label not in fold],
                                                        args.overrides))
            held = [c for c in clips if c.label in fold]
            rows.append(both(model, held, sorted(fold)))
            print(f"held-out classes fold {i} ({len(fold)}-way): {rows[-1]}", flush=True)
            mixed.append(both(model, held, labels))
            print(f"held-out classes fold {i} among all {len(labels)} labels: {mixed[-1]}", flush=True)
        results["heldout_classes"] = summary(rows)
        results["heldout_classes_among_all_labels"] = summary(mixed)
    results["seconds"] = round(time.time() - start, 1)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
