"""`load_torch_model(..., isolate_text=True)`: the text tower runs in a child process, with the same results."""
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from clap_core import ClapError, load_torch_model

PROMPTS = ["This is a sound of glass breaking.", "a dog barks twice"]


@pytest.mark.parametrize("which", ["tiny", "msclap"])
def test_same_embeddings_as_in_process(which, tiny_model_dir, msclap_checkpoint):
    path = tiny_model_dir if which == "tiny" else msclap_checkpoint
    local, isolated = load_torch_model(path), load_torch_model(path, isolate_text=True)
    assert torch.equal(isolated.embed_text(PROMPTS), local.embed_text(PROMPTS))
    audio = 0.1 * torch.randn(2, int(local.sample_rate * 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(isolated.embed_audio(audio, local.sample_rate), local.embed_audio(audio, local.sample_rate))


def test_the_process_never_imports_the_text_encoder(msclap_checkpoint):
    code = ("import sys\nfrom clap_core import load_torch_model\n"
            f"m = load_torch_model({str(msclap_checkpoint)!r}, isolate_text=True)\n"
            "e = m.embed_text(['a bell rings'])\n"
            "m.compact_for_inference()\n"
            "print(tuple(e.shape), 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "(1, 1024) False"


def test_a_broken_text_tower_is_reported_by_name(tiny_model_dir, tmp_path):
    """The audio side loads; the child checks the text tensors and its error reaches the caller."""
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    state = load_file(str(broken / "model.safetensors"))
    key = next(k for k in state if k.startswith("text_tower.") and k.endswith("query.weight"))
    state[key] = torch.zeros(3, 3)
    save_file(state, str(broken / "model.safetensors"))
    model = load_torch_model(broken, isolate_text=True)
    with pytest.raises(ClapError, match=r"model\.safetensors: the text tower's tensors do not match"):
        model.embed_text(PROMPTS)


def test_isolated_text_refuses_autograd(tiny_model_dir):
    model = load_torch_model(tiny_model_dir, isolate_text=True)
    with pytest.raises(ClapError, match="no gradients"):
        model.encode_text(PROMPTS)
