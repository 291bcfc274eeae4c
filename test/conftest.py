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
    """The embedded default model (`load_model`), or a skip that says why (its weights may not be built yet).

    The torch runtime, for speed: engines built in tests embed their prompts in-process (≈ 30 ms)
    instead of in a text child (≈ 7 s each) as the torch-free runtime `auto` picks does. The two
    runtimes' agreement is tested (test/core/test_onnx_model.py; the live node, torch-free, against
    replay with this model in test/bags/test_node_replay.py)."""
    from clap_core import load_model

    return _default(lambda weights: load_model(weights, runtime="torch"))


@pytest.fixture(scope="session")
def default_torch_model():
    """The embedded default model's torch module (for tests of its towers), or a skip that says why."""
    from clap_core import load_torch_model

    return _default(load_torch_model)


# -- the big families: MS-CLAP 2023 and LAION-CLAP, random weights (test/core, test/test_families.py) --
GPT2_RANKS = REPO / ".cache" / "gpt2" / "gpt2.tiktoken"


def _gpt2_ranks() -> Path:
    if not GPT2_RANKS.is_file():
        pytest.fail(f"{GPT2_RANKS} missing: run scripts/setup.sh (it fetches the openai-whisper sdist)")
    return GPT2_RANKS


def _read_audio(path: str):
    """torchaudio.load's contract (channels × samples, rate) for msclap's reader."""
    import numpy as np
    import soundfile as sf
    import torch

    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """GPT-2's tokenizer files (from the openai-whisper ranks) in a fresh weights folder."""
    from clap_core.gpt2_bpe import write_tokenizer_files

    return write_tokenizer_files(_gpt2_ranks(), tmp_path_factory.mktemp("weights") / "gpt2")


@pytest.fixture(scope="session")
def ms23(tokenizer_dir):
    """(msclap wrapper, our model loaded by registered name, checkpoint path): msclap's own 2023
    model with seeded random weights (real size, ~640 MB) as CLAP_weights_2023.pth in a weights
    folder beside the tokenizer; CLAP_WEIGHTS_DIR points there for the session."""
    import sys

    import torch

    from clap_core import load_torch_model
    from references.msclap_reference import build_msclap_2023_wrapper

    weights_dir = tokenizer_dir.parent
    empty = weights_dir / "empty.pth"
    torch.save({"model": {}}, str(empty))
    wrapper = build_msclap_2023_wrapper(empty, tokenizer_dir, seed=3)
    state = dict(wrapper.clap.state_dict())
    # What older transformers wrote into GPT-2 checkpoints (see the field notes): accepted by name.
    for i in range(12):
        state[f"caption_encoder.base.h.{i}.attn.bias"] = torch.tril(torch.ones(1024, 1024, dtype=torch.bool))[None, None]
        state[f"caption_encoder.base.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    path = weights_dir / "CLAP_weights_2023.pth"
    torch.save({"model": state}, str(path))
    del state
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLAP_WEIGHTS_DIR", str(weights_dir))
        model = load_torch_model("msclap-2023")
        sys.modules["torchaudio"].load = _read_audio  # msclap's reader; the stub has none
        yield wrapper, model, path


@pytest.fixture(scope="session")
def laion(tmp_path_factory):
    """(transformers ClapModel, its ClapProcessor, weights folder holding the saved model as
    laion--clap-htsat-unfused): a small random `ClapConfig`."""
    from references.msclap_reference import roberta_style_tokenizer, write_random_laion_folder

    ranks = _gpt2_ranks()
    base = tmp_path_factory.mktemp("laion")
    tokenizer = roberta_style_tokenizer(ranks, base / "check")
    assert tokenizer("Hello world")["input_ids"] == [0, 15496 + 4, 995 + 4, 2]  # GPT-2's ids, shifted
    weights = base / "weights"
    model, processor = write_random_laion_folder(weights / "laion--clap-htsat-unfused", ranks)
    return model, processor, weights
