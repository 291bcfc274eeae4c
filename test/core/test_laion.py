"""LAION-CLAP through transformers' ClapModel: a saved folder loads by path and by registered name,
and gives exactly what `ClapModel.get_audio_features/get_text_features` give when called directly.

The model is a small random `ClapConfig` saved offline. Its tokenizer is RoBERTa-style, built from
GPT-2's BPE (the openai-whisper ranks) with RoBERTa's special tokens in front: the ids are not
LAION's (RoBERTa's vocabulary is not derivable offline), which does not matter with random weights.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clap_core import CheckpointError, load_torch_model
from clap_core.resample import resample

ROOT = Path(__file__).resolve().parents[2]
SOUNDS = ROOT.parent / "shared" / "data" / "sounds45"
PROMPTS = ["This is a sound of water.", "a bicycle bell rings", "Hello world"]


def _clips_48k(n: int) -> list[np.ndarray]:
    paths = sorted(SOUNDS.glob("*/*.flac"))[::17][:n]
    return [resample(sf.read(str(p), dtype="float32")[0], 44100, 48000) for p in paths]


def test_audio_and_text_match_transformers_called_directly(laion, monkeypatch):
    model, processor, weights = laion
    monkeypatch.setenv("CLAP_WEIGHTS_DIR", str(weights))
    ours = load_torch_model("laion-clap-htsat-unfused")
    assert ours.sample_rate == 48000 and ours.clip_seconds == 10.0
    clips = _clips_48k(3)
    for clip in clips:
        with torch.no_grad():
            inputs = processor.feature_extractor([clip], sampling_rate=48000, return_tensors="pt")
            want = model.get_audio_features(**inputs).pooler_output
        got = ours.embed_audio(clip, 48000)
        assert torch.nn.functional.cosine_similarity(want, got).min() >= 0.99999
        assert (want - got).abs().max() <= 1e-3
    direct = [model.get_audio_features(**processor.feature_extractor([c], sampling_rate=48000,
                                                                      return_tensors="pt")).pooler_output
              for c in clips]
    assert (direct[0] - direct[1]).abs().max() > 1e-2  # the bound is far below clip-to-clip differences
    with torch.no_grad():
        tokens = processor.tokenizer(PROMPTS, padding=True, return_tensors="pt")
        want_text = model.get_text_features(**tokens).pooler_output
    got_text = ours.embed_text(PROMPTS)
    assert torch.nn.functional.cosine_similarity(want_text, got_text).min() >= 0.99999
    assert (want_text - got_text).abs().max() <= 1e-3
    repeated = ours.embed_text([*PROMPTS, PROMPTS[0]], [PROMPTS[-1]] * (len(PROMPTS) + 1))  # mixes: no gates
    assert torch.equal(repeated[:-1], got_text) and torch.equal(repeated[-1], got_text[0])


def test_long_clip_is_deterministic_mean_of_10s_pieces(laion):
    model, processor, weights = laion
    ours = load_torch_model(weights / "laion--clap-htsat-unfused")
    clip = np.concatenate(_clips_48k(4))
    clip = np.tile(clip, int(np.ceil(25 * 48000 / clip.size)))[: 25 * 48000]  # 25 s: pieces 10 + 10 + 5
    first, second = ours.embed_audio(clip, 48000), ours.embed_audio(clip, 48000)
    assert torch.equal(first, second)
    with torch.no_grad():
        pieces = [model.get_audio_features(**processor.feature_extractor(
            [clip[s:s + 480000]], sampling_rate=48000, return_tensors="pt")).pooler_output for s in (0, 480000, 960000)]
    want = torch.nn.functional.normalize(torch.stack(pieces).mean(0), dim=-1)
    assert (want - first).abs().max() <= 1e-5


def test_folder_without_processor_is_a_clear_error(laion, tmp_path):
    model, _, _ = laion
    model.save_pretrained(tmp_path / "bare")
    with pytest.raises(CheckpointError, match="processor_config.json or preprocessor_config.json"):
        load_torch_model(tmp_path / "bare")


def test_released_text_model_reloads_to_the_same_embeddings(laion):
    _, _, weights = laion
    ours = load_torch_model(weights / "laion--clap-htsat-unfused")
    before = ours.embed_text(PROMPTS)
    assert ours.release_text_tower() and ours.hf.text_model is None
    clip = _clips_48k(1)[0]
    audio = ours.embed_audio(clip, 48000)  # the audio path does not need the text model
    assert torch.equal(ours.embed_text(PROMPTS), before) and audio.shape == (1, 24)


def test_node_auto_runtime_keeps_laion_on_torch(laion):
    from clap_core.onnx_model import exportable

    assert exportable(laion[2] / "laion--clap-htsat-unfused") is False
