"""`clap_core.load_model`: one contract for both runtimes, runtime and device choices, one-line errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clap_core import ConfigError, InferenceModel, load_model, load_torch_model
from clap_core.factory import choose_runtime

NO_CUDA = not torch.cuda.is_available()
PROMPTS = ["a dog barks", "rain on a window"]


@pytest.fixture(scope="module")
def both(tiny_model_dir):
    """The tiny CNN14 model in each runtime, and its torch module as the reference."""
    return (load_model(tiny_model_dir, runtime="torch"), load_model(tiny_model_dir, runtime="onnx"),
            load_torch_model(tiny_model_dir))


def test_both_runtimes_implement_the_contract_in_numpy(both) -> None:
    torch_rt, onnx_rt, module = both
    wave = (0.1 * np.random.default_rng(0).standard_normal((2, 16000 * 5))).astype(np.float32)
    with torch.inference_mode():
        want_audio = module.embed_audio(torch.from_numpy(wave), 16000)
        want_text = module.embed_text(PROMPTS)
    for model in (torch_rt, onnx_rt):
        assert isinstance(model, InferenceModel)
        audio, text = model.embed_audio(wave, 16000), model.embed_text(PROMPTS)
        assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.shape == (2, 32)
        assert isinstance(text, np.ndarray) and text.shape == (2, 32)
        assert F.cosine_similarity(torch.from_numpy(audio), want_audio).min() > 0.99999
        assert F.cosine_similarity(torch.from_numpy(text), want_text).min() > 0.99999
        whole, parts, spans = model.embed_audio_parts(wave, 16000, 1.0, 0.5)
        assert isinstance(parts, np.ndarray) and parts.shape[:2] == (2, len(spans)) and whole.shape == (2, 32)
        assert (model.name, model.sample_rate, model.clip_seconds, model.embed_dim) == ("tiny-test", 16000, 5.0, 32)
        assert model.template == "This is a sound of {}." and model.device == "cpu"
    assert (torch_rt.runtime, onnx_rt.runtime) == ("torch", "onnx")


def test_logit_scale_is_exp_and_capped_and_similarity_uses_it(both, tiny_model_dir) -> None:
    torch_rt, onnx_rt, module = both
    want = min(math.exp(float(module.logit_scale.detach())), 100.0)
    assert torch_rt.logit_scale == pytest.approx(want, rel=1e-6) and onnx_rt.logit_scale == pytest.approx(want, rel=1e-6)
    a, t = np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[2.0, 0.0]])
    got = torch_rt.similarity(a, t)  # cosines 1 and 1/sqrt(2), worked out by hand
    assert got == pytest.approx(np.array([[want], [want / math.sqrt(2)]]), rel=1e-6)
    from clap_core.torch_runtime import TorchInferenceModel

    hot = load_torch_model(tiny_model_dir)
    with torch.no_grad():
        hot.logit_scale.fill_(math.log(500.0))  # above the cap: CLAP training's clip applies
    assert TorchInferenceModel(hot).logit_scale == 100.0


@pytest.fixture
def htsat_dir(tmp_path, default_weights):
    """A project folder whose config names an HTS-AT tower (no ONNX export yet): read, never loaded."""
    from clap_core.weights_registry import resolve_weights

    folder = resolve_weights(default_weights)
    folder = folder.parent if folder.suffix == ".safetensors" else folder
    config = json.loads((folder / "config.json").read_text())
    config["audio"]["kind"] = "htsat"
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_auto_picks_onnx_where_the_tower_exports_and_torch_otherwise(tiny_model_dir, default_weights,
                                                                      htsat_dir) -> None:
    assert choose_runtime(tiny_model_dir) == "onnx" and choose_runtime(default_weights) == "onnx"
    assert choose_runtime(htsat_dir) == "torch"
    assert choose_runtime(default_weights, precision="bf16") == "torch"  # the ONNX path is fp32 only
    assert choose_runtime(tiny_model_dir, "torch") == "torch"


def test_onnx_on_weights_that_do_not_export_is_one_line(htsat_dir, default_weights) -> None:
    with pytest.raises(ConfigError) as info:
        load_model(htsat_dir, runtime="onnx", runtime_parameter="--runtime")
    assert "--runtime='onnx'" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="runtime='tensorflow' is not one of"):
        load_model(default_weights, runtime="tensorflow")


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_a_misspelt_device_is_one_line_naming_the_parameter(tiny_model_dir, runtime) -> None:
    with pytest.raises(ConfigError) as info:
        load_model(tiny_model_dir, runtime=runtime, device="gpu", device_parameter="--device")
    assert "--device='gpu'" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(not NO_CUDA, reason="a CUDA device is present, so cuda must load")
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_cuda_without_a_gpu_is_one_line_naming_the_parameter(tiny_model_dir, runtime) -> None:
    with pytest.raises(ConfigError) as info:
        load_model(tiny_model_dir, runtime=runtime, device="cuda", device_parameter="--device")
    assert "--device='cuda'" in str(info.value) and "no CUDA device" in str(info.value)
    assert "\n" not in str(info.value)


def test_auto_device_on_this_machine(tiny_model_dir) -> None:
    model = load_model(tiny_model_dir, runtime="torch", device="auto")
    assert model.device == ("cuda:0" if not NO_CUDA else "cpu")


@pytest.mark.skipif(NO_CUDA, reason="no CUDA device visible to torch on this machine")
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_cuda_embeddings_match_the_cpu(tiny_model_dir, runtime) -> None:
    wave = (0.1 * np.random.default_rng(0).standard_normal((2, 16000 * 5))).astype(np.float32)
    cpu = load_model(tiny_model_dir, runtime=runtime).embed_audio(wave, 16000)
    gpu_model = load_model(tiny_model_dir, runtime=runtime, device="cuda")
    gpu = gpu_model.embed_audio(wave, 16000)
    assert F.cosine_similarity(torch.from_numpy(cpu), torch.from_numpy(gpu)).min() > 0.99999
