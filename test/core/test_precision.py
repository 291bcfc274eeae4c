"""Reduced precision (`clap_core.precision`) on the CPU: real models, real recordings.

The bars are bench/precision.py's measurements (docs/core.md, 2026-12-03): bf16 keeps the cosine to
fp32 at ≥ 0.99998 for CNN14 (random weights, real size) and ≥ 0.99999 for the default model on
sounds45. Each test also checks that the low precision really ran (the numbers moved), so a
setting that is silently ignored fails.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clap_core import load_model, load_torch_model
from clap_core.audio_io import load_audio
from clap_core.clips import clip_windows
from clap_core.errors import ConfigError
from clap_core.precision import apply_precision, check_node_precision, check_onnx_precision, unsupported_reason

BF16_MIN_COSINE = 0.9999  # measured minimum over 32 clips: 0.99998 (CNN14), 0.999994 (default)


@pytest.fixture(scope="module")
def clips(sounds45_rows, sounds45) -> tuple[torch.Tensor, int]:
    """Two real recordings, one 5-s window each (short ones tiled), at their own rate (44.1 kHz)."""
    waves = []
    for row in sounds45_rows[::60][:2]:
        wave, rate = load_audio(sounds45 / row["path"])
        waves.append(torch.from_numpy(clip_windows(wave, rate, 5.0)[0]))
    return torch.stack(waves), rate


def _bf16_against_fp32(model, clips) -> tuple[torch.Tensor, torch.Tensor]:
    batch, rate = clips
    fp32 = model.embed_audio(batch, rate)
    apply_precision(model, "bf16")
    return model.embed_audio(batch, rate), fp32


def test_bf16_cnn14_stays_within_the_measured_cosine(msclap_checkpoint, clips) -> None:
    model = load_torch_model(msclap_checkpoint)
    bf16, fp32 = _bf16_against_fp32(model, clips)
    assert bf16.dtype == torch.float32  # callers always get fp32 embeddings
    assert F.cosine_similarity(bf16, fp32).min() >= BF16_MIN_COSINE
    assert (bf16 - fp32).abs().max() > 1e-4  # it did run in bf16 (fp32 reruns are bit-identical)
    folded = [conv for pair in model.audio_tower._folded_weights() for conv in pair]
    assert {conv.bias.dtype for conv in folded} == {torch.bfloat16}  # the packed convs too: autocast misses them
    apply_precision(model, "fp32")
    torch.testing.assert_close(model.embed_audio(*clips), fp32, rtol=0, atol=0)  # and it goes back


def test_bf16_default_model_stays_within_the_measured_cosine(default_weights, clips) -> None:
    model = load_model(default_weights, precision="bf16")  # the factory's keyword, not only apply_precision
    bf16, text = torch.from_numpy(model.embed_audio(*clips)), model.embed_text(["a dog barking"])
    reference = load_model(default_weights)
    fp32 = torch.from_numpy(reference.embed_audio(*clips))
    assert F.cosine_similarity(bf16, fp32).min() >= BF16_MIN_COSINE
    assert (bf16 - fp32).abs().max() > 0
    np.testing.assert_array_equal(reference.embed_text(["a dog barking"]), text)  # text stays fp32


def test_front_end_stays_fp32_under_autocast(clips) -> None:
    """An 8-bit mantissa would bury quiet sounds in the spectrum's rounding noise."""
    from clap_core.towers.logmel import LogMelFrontEnd

    frontend = LogMelFrontEnd(44100, 1024, 320, 64, 50.0, 14000.0)
    batch, _ = clips
    expected = frontend(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = frontend(batch)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("call", [
    lambda: load_model("default", precision="fp8"),
    lambda: check_node_precision("BF16"),
])
def test_bad_precision_name_is_one_line(call) -> None:
    with pytest.raises(ConfigError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and "fp32 | bf16 | fp16" in message, message


def test_onnx_path_refuses_reduced_precision() -> None:
    from clap_core.onnx_model import load_onnx_model

    check_onnx_precision("fp32")
    with pytest.raises(ConfigError, match="ONNX Runtime audio path runs fp32 only"):
        load_onnx_model("msclap-2022", precision="bf16")  # refused before anything loads or exports


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CUDA-less refusal; this machine has CUDA")
def test_cuda_precision_without_cuda_names_the_reason(msclap_checkpoint) -> None:
    assert unsupported_reason("fp32", "cuda") is None  # fp32 itself is never the problem
    with pytest.raises(ConfigError, match="precision: 'fp16': torch sees no CUDA device here"):
        apply_precision(load_torch_model(msclap_checkpoint), "fp16", "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: fp16 on the GPU is not tested here")
@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_reduced_precision_on_cuda_stays_within_the_bar(msclap_checkpoint, clips, name) -> None:
    if unsupported_reason(name, "cuda") is not None:
        pytest.skip(unsupported_reason(name, "cuda"))
    model = load_torch_model(msclap_checkpoint, device="cuda")
    fp32 = model.embed_audio(*clips)
    apply_precision(model, name)
    assert F.cosine_similarity(model.embed_audio(*clips), fp32).min() >= 0.999
