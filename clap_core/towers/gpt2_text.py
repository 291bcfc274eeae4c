"""GPT-2 text tower (MS-CLAP 2023): `transformers.GPT2Model` with msclap's last-token pooling.

msclap 1.3.4 tokenises `prompt + ' <|endoftext|>'`, pads with '!' (id 0) to 77 tokens and takes
the hidden state at `(input_ids != 0).sum(-1) - 1`. That counts a literal '!' in a prompt as
padding too; we reproduce it exactly, since the published weights were trained that way.

The tokenizer files (`vocab.json`, `merges.txt`) are read from `gpt2/` in the weights folders
(`$CLAP_WEIGHTS_DIR`, `~/.cache/clap_ros`) or from the folder the config names; they are never
downloaded at run time.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import GPT2Config, GPT2Model, GPT2TokenizerFast

from ..config import TextTowerConfig
from ..errors import ConfigError
from ..gpt2_bpe import END_OF_TEXT, TOKENIZER_FILES
from .base import TextTower

PAD_TOKEN = "!"  # GPT-2 id 0, msclap's pad token
TOKENIZER_FOLDER = "gpt2"
HOW_TO_GET = ("`clap-weights download msclap-2023` fetches them; offline, build them from the openai-whisper sdist "
              "(scripts/setup.sh fetches it into .cache/gpt2): "
              "`python -m clap_core.gpt2_bpe whisper/assets/gpt2.tiktoken ~/.cache/clap_ros/gpt2`")


def tokenizer_folder(source: str) -> Path:
    """`source` "gpt2": the first weights folder holding `gpt2/vocab.json` and `merges.txt`;
    otherwise `source` is that folder itself."""
    from ..weights_registry import weights_search_path

    candidates = [d / TOKENIZER_FOLDER for d in weights_search_path()] if source == "gpt2" else [Path(source)]
    for folder in candidates:
        if all((folder / name).is_file() for name in TOKENIZER_FILES):
            return folder
    where = " or ".join(str(c) for c in candidates)
    raise ConfigError(f"GPT-2 tokenizer: {' and '.join(TOKENIZER_FILES)} not found in {where}; {HOW_TO_GET}")


def gpt2_tokenizer(folder: Path) -> GPT2TokenizerFast:
    """GPT-2's BPE with msclap's pad token; the vocabulary size is checked (50,257)."""
    tokenizer = GPT2TokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.pad_token = PAD_TOKEN
    if len(tokenizer) != GPT2Config().vocab_size or tokenizer.convert_tokens_to_ids(END_OF_TEXT) != 50256:
        raise ConfigError(f"GPT-2 tokenizer in {folder}: {len(tokenizer)} tokens, expected GPT-2's 50257 "
                          f"with {END_OF_TEXT} = 50256; {HOW_TO_GET}")
    return tokenizer


class Gpt2TextTower(TextTower):
    """strings → GPT-2 hidden state at the last non-pad token."""

    def __init__(self, cfg: TextTowerConfig) -> None:
        super().__init__()
        if cfg.pooling != "last":
            raise ConfigError(f"text.pooling: the GPT-2 tower pools the last token ('last'), got '{cfg.pooling}'")
        self.tokenizer = gpt2_tokenizer(tokenizer_folder(cfg.source))
        self.encoder = GPT2Model(GPT2Config())
        self.max_length = cfg.max_length
        self.out_dim = int(self.encoder.config.hidden_size)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        prompts = [text + " " + END_OF_TEXT for text in texts]
        return self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = self.encoder.wte.weight.device
        tokens = {k: v.to(device) for k, v in self.tokenize(texts).items()}
        hidden = self.encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
        last = (tokens["input_ids"] != 0).sum(-1) - 1
        return hidden[torch.arange(hidden.shape[0], device=device), last]


def build(cfg: TextTowerConfig) -> Gpt2TextTower:
    return Gpt2TextTower(cfg)
