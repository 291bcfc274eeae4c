"""MS-CLAP 2023 (HTS-AT + GPT-2): parity with Microsoft's own msclap code, key accounting, tokenizer.

The reference is msclap 1.3.4's `CLAPWrapper(version="2023")` built offline with seeded random
weights (`test/references/msclap_reference.py: build_msclap_2023_wrapper`); its audio goes through msclap's own
`preprocess_audio` and its text through msclap's own `preprocess_text`. One real-size random
checkpoint (~640 MB) is written once per session (the `ms23` fixture, test/conftest.py).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from clap_core import CheckpointError, ConfigError, load_torch_model
from clap_core.checkpoints import load_checkpoint
from clap_core.config import msclap_2023_config
from clap_core.towers.registry import build_text_tower

ROOT = Path(__file__).resolve().parents[2]
SOUNDS = ROOT.parent / "shared" / "data" / "sounds45"
# Clips shorter than msclap's 7 s: its preprocessing repeats them (no random crop), so both
# sides see the same samples.
CLIPS = ["CompressedAirSpray/compressedAirSpray01.flac", "BicycleBell", "BiteChewApple", "BicycleFreewheel"]
PROMPTS = ["This is a sound of water.", "a dog barks!", "Hello world", "glass breaking on a tiled floor"]


def _clip_paths() -> list[str]:
    paths = []
    for name in CLIPS:
        path = SOUNDS / name
        if path.is_dir():
            path = next(p for p in sorted(path.glob("*.flac")) if sf.info(str(p)).duration < 7.0)
        paths.append(str(path))
    return paths


def test_tokenizer_gives_published_gpt2_ids(tokenizer_dir, ms23):
    wrapper, model, _ = ms23
    assert model.text_tower.tokenizer("Hello world")["input_ids"] == [15496, 995]
    assert model.text_tower.tokenizer("!<|endoftext|>")["input_ids"] == [0, 50256]
    ref = wrapper.preprocess_text(["Hello world"])["input_ids"][0]  # msclap's own tokenisation
    assert ref[:4].tolist() == [15496, 995, 220, 50256] and ref.shape[0] == 77 and int(ref[4:].abs().sum()) == 0
    assert torch.equal(model.text_tower.tokenize(["Hello world"])["input_ids"][0], ref)


def test_audio_parity_with_msclap(ms23):
    wrapper, model, _ = ms23
    batch = wrapper.preprocess_audio(_clip_paths(), True)  # msclap's repeat-to-7-s preprocessing
    assert batch.shape[-1] == int(model.clip_seconds * model.sample_rate)
    ref = wrapper._get_audio_embeddings(batch)
    ours = model.embed_audio(batch[:, 0], model.sample_rate)
    assert F.cosine_similarity(ref, ours).min() >= 0.99999
    bound = (ref - ours).abs().max()
    assert bound <= 1e-3
    # Random HTS-AT barely reacts to its input: the bound must still be far below clip-to-clip differences.
    between = min((ref[i] - ref[j]).abs().max() for i in range(len(ref)) for j in range(i))
    assert between > 10 * max(float(bound), 1e-4)


def test_front_end_parity_with_msclap(ms23):
    """msclap's STFT → log-Mel → BatchNorm, compared on its own (what HTS-AT's input really is)."""
    wrapper, model, _ = ms23
    batch = wrapper.preprocess_audio(_clip_paths()[:2], True)[:, 0]
    htsat = wrapper.clap.audio_encoder.base.htsat
    with torch.no_grad():
        ref = htsat.bn0(htsat.logmel_extractor(htsat.spectrogram_extractor(batch)).transpose(1, 3)).transpose(1, 3)
        ours = model.audio_tower.features(batch)
        ref_image, our_image = htsat.reshape_wav2img(ref), model.audio_tower.to_image(ours)
    assert ours.shape == ref.shape and our_image.shape == ref_image.shape
    # Log-Mel values are in dB (about -110…+10 here): float32 convolution vs FFT differ by a few
    # 1e-3 dB in near-silent bins, so the bound is relative to the range.
    scale = float(ref.abs().max())
    assert float((ref - ours).abs().max()) <= 1e-4 * scale
    assert float((ref_image - our_image).abs().max()) <= 1e-4 * scale
    assert F.cosine_similarity(ref.flatten(1), ours.flatten(1)).min() >= 0.99999
    assert float((ref[0] - ref[1]).abs().max()) > 0.1 * scale


def test_text_parity_with_msclap(ms23):
    wrapper, model, _ = ms23
    ref = wrapper.get_text_embeddings(PROMPTS)
    ours = model.embed_text(PROMPTS)
    assert F.cosine_similarity(ref, ours).min() >= 0.99999
    assert (ref - ours).abs().max() <= 1e-3
    assert (ref[0] - ref[1]).abs().max() > 1e-2


def test_model_settings_follow_msclap_config(ms23):
    wrapper, model, _ = ms23
    assert model.clip_seconds == wrapper.args.duration == 7
    assert model.sample_rate == wrapper.args.sampling_rate
    assert model.text_tower.max_length == wrapper.args.text_len
    assert model.logit_scale.item() == pytest.approx(wrapper.clap.logit_scale.item())


def test_unknown_missing_and_bad_keys_are_named(ms23):
    from clap_core import msclap_2023

    wrapper, model, _ = ms23
    state = dict(wrapper.clap.state_dict())
    extra = "caption_encoder.base.h.0.attn.extra"
    with pytest.raises(CheckpointError, match=rf"1 unexpected: {extra}"):
        msclap_2023.load_state(model, {**state, extra: torch.zeros(1)}, "f")
    with pytest.raises(CheckpointError, match="1 unexpected: something.else"):
        msclap_2023.load_state(model, {**state, "something.else": torch.zeros(1)}, "f")
    gone = "audio_encoder.base.htsat.layers.1.blocks.0.attn.qkv.weight"
    with pytest.raises(CheckpointError, match=rf"1 missing: {gone}"):
        msclap_2023.load_state(model, {k: v for k, v in state.items() if k != gone}, "f")
    with pytest.raises(CheckpointError, match="h.3.attn.bias is not GPT-2's causal mask"):
        msclap_2023.load_state(model, {**state, "caption_encoder.base.h.3.attn.bias": torch.ones(1, 1, 4, 4)}, "f")


def test_garbage_file_is_not_taken_for_2023(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model": {"audio_encoder.base.htsat.x": torch.zeros(1)}}, str(path))
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout"):
        load_checkpoint(path)


def test_missing_tokenizer_names_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAP_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=r"vocab\.json and merges\.txt not found in .*gpt2.*gpt2_bpe"):
        build_text_tower(msclap_2023_config().text)


def test_isolated_text_tower_gives_the_same_embeddings(ms23):
    """The node's set-up: GPT-2 runs in a child process that loads its tensors from the 2023 file."""
    wrapper, _, path = ms23
    isolated = load_torch_model(path, isolate_text=True)
    assert (wrapper.get_text_embeddings(PROMPTS[:2]) - isolated.embed_text(PROMPTS[:2])).abs().max() <= 1e-3


def test_convert_to_project_format_round_trips(ms23, tmp_path, capsys):
    from clap_core.cli.weights import main

    wrapper, model, path = ms23
    assert main(["convert", str(path), str(tmp_path / "converted")]) == 0
    converted = load_torch_model(tmp_path / "converted")
    assert converted.config.name == "msclap-2023" and converted.clip_seconds == 7.0
    assert torch.equal(converted.embed_text(PROMPTS[:1]), model.embed_text(PROMPTS[:1]))


def test_node_auto_runtime_keeps_htsat_on_torch(ms23):
    """HTS-AT does not export to ONNX yet: `audio_runtime auto` must pick torch, told by the file's keys."""
    from clap_core.onnx_model import exportable

    assert exportable(ms23[2]) is False
