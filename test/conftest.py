"""Fixtures shared by the whole suite: real recordings, and small real models built offline."""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout; CLAP_SHARED_DIR points elsewhere (a worktree whose parent has none)
SHARED = Path(os.environ.get("CLAP_SHARED_DIR") or REPO.parent / "shared").resolve()
SOUNDS45 = SHARED / "data" / "sounds45"
SFX_POOL = SHARED / "data" / "sfx_pool"


@pytest.fixture(scope="session")
def sounds45() -> Path:
    if not (SOUNDS45 / "labels.csv").is_file():
        pytest.skip(f"the sounds45 recordings are not at {SOUNDS45}")
    return SOUNDS45


@pytest.fixture(scope="session")
def sfx_pool() -> Path:
    if not (SFX_POOL / "labels.csv").is_file():
        pytest.skip(f"the sfx_pool recordings are not at {SFX_POOL}")
    return SFX_POOL


@pytest.fixture(scope="session")
def sounds45_rows(sounds45: Path) -> list[dict[str, str]]:
    with (sounds45 / "labels.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def msclap_checkpoint(tmp_path_factory) -> Path:
    """Microsoft's msclap 2022 model with seeded random weights, saved in the official layout."""
    from references.msclap_reference import write_msclap_checkpoint

    return write_msclap_checkpoint(tmp_path_factory.mktemp("msclap") / "CLAP_weights_2022.pth", seed=0)


def tiny_text_folder(folder: Path) -> Path:
    """A 1-layer BERT with bert-base-uncased's vocabulary: a real `transformers` model, just small."""
    from transformers import BertConfig

    from clap_core.towers.hf_text import MINILM_PACKAGE, package_model_dir

    folder.mkdir(parents=True, exist_ok=True)
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
               max_position_embeddings=128).save_pretrained(str(folder))
    src = package_model_dir(MINILM_PACKAGE)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (src / name).exists():
            shutil.copy(src / name, folder / name)
    return folder


def tiny_model_config(text_folder: Path):
    """CNN14 with narrow channels + the tiny BERT: the full architecture in a few MB."""
    from clap_core.config import AudioTowerConfig, ModelConfig, TextTowerConfig

    return ModelConfig(
        name="tiny-test",
        audio=AudioTowerConfig(kind="cnn14", sample_rate=16000,
                               options=dict(window_size=512, hop_size=160, mel_bins=32, fmin=50.0, fmax=8000.0,
                                            classes_num=0, out_dim=64, channels=[4, 8, 8, 16, 16, 32])),
        text=TextTowerConfig(kind="hf", source=str(text_folder), pooling="cls", max_length=32),
        embed_dim=32,
    )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A small model saved in the project's format (config.json + model.safetensors)."""
    import torch

    from clap_core.checkpoints import save_checkpoint
    from clap_core.model import create_model

    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    model = create_model(tiny_model_config(tiny_text_folder(root / "text")))
    return save_checkpoint(model, root / "model")


@pytest.fixture(scope="session")
def default_weights() -> str:
    """'default' when the embedded model is present; otherwise a skip that says why."""
    from clap_core.errors import CheckpointError
    from clap_core.weights_registry import resolve_weights

    try:
        resolve_weights("default")
    except CheckpointError as exc:
        pytest.skip(f"default model not available: {exc}")
    return "default"


def _default(loader):
    from clap_core.errors import CheckpointError

    try:
        return loader("default")
    except CheckpointError as exc:
        pytest.skip(f"default model not available: {exc}")


@pytest.fixture(scope="session")
def default_model():
    """The embedded default model (`load_model`), or a skip that says why (its weights may not be built yet)."""
    from clap_core import load_model

    return _default(load_model)


@pytest.fixture(scope="session")
def default_torch_model():
    """The embedded default model's torch module (for tests of its towers), or a skip that says why."""
    from clap_core import load_torch_model

    return _default(load_torch_model)
