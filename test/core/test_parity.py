"""Numeric parity with Microsoft's own msclap code on real recordings (random seeded weights)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clap_core import load_model
from clap_core.audio_io import clip_windows, load_audio
from clap_core.reference import build_msclap_2022, msclap_text_inputs

CLIPS = ["HammerMetal/HammerMetal01.flac", "WaterSplash/WaterSplashing02.flac",
         "ClankingDishes/clankingDishes01.flac", "BicycleBell/bikeBell03.flac"]
PROMPTS = ["This is a sound of hammer metal.", "This is a sound of water splash.", "a dog barking",
           "someone pours liquid into a glass", "This is a sound of a bicycle bell ringing loudly."]


@pytest.fixture(scope="module")
def pair(msclap_checkpoint):
    reference = build_msclap_2022(seed=0)
    ours = load_model(msclap_checkpoint)
    return reference, ours


@pytest.fixture(scope="module")
def clips(sounds45) -> torch.Tensor:
    windows = []
    for rel in CLIPS:
        wave, rate = load_audio(sounds45 / rel)
        assert rate == 44100
        windows.append(clip_windows(wave, rate, 5.0)[0])
    return torch.from_numpy(np.stack(windows))


def _assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    cosine = F.cosine_similarity(ours, ref, dim=-1)
    assert cosine.min().item() >= 0.99999, cosine
    assert (ours - ref).abs().max().item() <= 1e-3


def test_audio_embeddings_match_msclap(pair, clips):
    reference, ours = pair
    with torch.no_grad():
        expected = reference.audio_encoder(clips)[0]
    _assert_close(ours.embed_audio(clips, 44100), expected)


def test_audio_embeddings_match_at_batch_one(pair, clips):
    reference, ours = pair
    with torch.no_grad():
        expected = reference.audio_encoder(clips[1:2])[0]
    _assert_close(ours.embed_audio(clips[1:2], 44100), expected)


def test_text_embeddings_match_msclap(pair):
    reference, ours = pair
    with torch.no_grad():
        expected = reference.caption_encoder(msclap_text_inputs(PROMPTS))
    _assert_close(ours.embed_text(PROMPTS), expected)


def test_logit_scale_and_similarity_match(pair, clips):
    reference, ours = pair
    assert ours.logit_scale.item() == pytest.approx(reference.logit_scale.item(), abs=0)
    with torch.no_grad():
        a = reference.audio_encoder(clips)[0]
        t = reference.caption_encoder(msclap_text_inputs(PROMPTS))
    expected = reference.logit_scale.exp() * F.normalize(a, dim=-1) @ F.normalize(t, dim=-1).T
    got = ours.similarity(ours.embed_audio(clips, 44100), ours.embed_text(PROMPTS))
    assert torch.allclose(got, expected, atol=1e-2), (got - expected).abs().max()


def test_embeddings_are_deterministic(pair, clips):
    _, ours = pair
    assert torch.equal(ours.embed_audio(clips, 44100), ours.embed_audio(clips, 44100))


def test_resampling_inside_embed_audio(pair, clips):
    """A 22.05 kHz input is resampled to the model's 44.1 kHz, landing near the native embedding."""
    from clap_core.audio_io import resample

    _, ours = pair
    low = torch.from_numpy(resample(clips[:1].numpy(), 44100, 22050))
    cosine = F.cosine_similarity(ours.embed_audio(low, 22050), ours.embed_audio(clips[:1], 44100))
    assert cosine.item() > 0.9
