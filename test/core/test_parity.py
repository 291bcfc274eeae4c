"""Numeric parity with Microsoft's own msclap code on real recordings (seeded random weights).

The reference side is msclap's `CLAPWrapper(checkpoint, version="2022")`: Microsoft's config,
model class, weight loading, tokenisation (`preprocess_text`) and caption encoder; clips are read
with soundfile and tiled to 5 s in this file as msclap's `load_audio_into_tensor` does (all four
clips are shorter than 5 s, so msclap's random crop never applies). Nothing on that side calls
this project's code. Bounds come from the measured agreement (docs/testing.md):
- log-Mel front end: max |diff| 3.9e-3 dB (at −95 dB, float32 rounding near the floor), 99.9th
  percentile 6.5e-4 dB;
- audio embeddings: max |diff| 1.5e-6; different clips differ by ≥ 1.8e-3, so the 1e-5 bound
  sees a wrong front end that random CNN14 weights would otherwise hide;
- text embeddings: max |diff| 2.5e-6; different prompts differ by ≥ 0.41.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from clap_core import load_torch_model
from clap_core.config import msclap_2022_config
from clap_core.model import create_model
from references.msclap_reference import msclap_wrapper_2022

CLIPS = ["HammerMetal/HammerMetal01.flac", "WaterSplash/WaterSplashing02.flac",
         "ClankingDishes/clankingDishes01.flac", "BicycleBell/bikeBell03.flac"]
PROMPTS = ["This is a sound of hammer metal.", "This is a sound of water splash.", "a dog barking",
           "someone pours liquid into a glass", "This is a sound of a bicycle bell ringing loudly."]
EMBED_ATOL = 1e-5
LOGMEL_MAX_DB, LOGMEL_P999_DB = 5e-3, 1e-3


@pytest.fixture(scope="module")
def reference(msclap_checkpoint):
    return msclap_wrapper_2022(msclap_checkpoint)


@pytest.fixture(scope="module")
def ours(msclap_checkpoint):
    return load_torch_model(msclap_checkpoint)


@pytest.fixture(scope="module")
def clips(sounds45) -> torch.Tensor:
    """5-s clips at 44.1 kHz, read and tiled here (msclap's recipe for clips shorter than 5 s)."""
    n = 5 * 44100
    out = []
    for rel in CLIPS:
        data, rate = sf.read(str(sounds45 / rel), dtype="float32", always_2d=True)
        assert rate == 44100 and len(data) < n
        mono = data.mean(axis=1)
        out.append(np.tile(mono, -(-n // len(mono)))[:n])
    return torch.from_numpy(np.stack(out))


def ms_audio(reference, clips: torch.Tensor) -> torch.Tensor:
    return reference._get_audio_embeddings(clips[:, None, :])  # msclap's [B, 1, T] batch layout


def assert_parity(ours: torch.Tensor, expected: torch.Tensor) -> None:
    """cosine ≥ 0.99999 and max |diff| ≤ 1e-5 (the issue's bound, tightened to what is reached)."""
    cosine = F.cosine_similarity(ours, expected, dim=-1)
    assert cosine.min().item() >= 0.99999, cosine
    assert (ours - expected).abs().max().item() <= EMBED_ATOL, (ours - expected).abs().max()


def test_inputs_differ_far_more_than_the_bound(reference, clips):
    """The bound means something only if different inputs move the embeddings by much more."""
    audio = ms_audio(reference, clips)
    text = reference.get_text_embeddings(PROMPTS)
    for emb in (audio, text):
        gaps = (emb[:, None] - emb[None]).abs().amax(-1)[~torch.eye(len(emb), dtype=torch.bool)]
        assert gaps.min().item() > 100 * EMBED_ATOL, gaps


def test_log_mel_front_end_matches_msclap(reference, clips):
    """Our front end, with the filterbank it builds itself (not loaded from msclap's melW), against
    msclap's torchlibrosa `spectrogram_extractor` → `logmel_extractor`."""
    base = reference.clap.audio_encoder.base
    with torch.no_grad():
        expected = base.logmel_extractor(base.spectrogram_extractor(clips))[:, 0]
    got = create_model(msclap_2022_config()).audio_tower.frontend(clips)
    diff = (got - expected).abs()
    assert diff.max().item() <= LOGMEL_MAX_DB, diff.max()
    assert torch.quantile(diff.flatten()[::7], 0.999).item() <= LOGMEL_P999_DB


def test_slaney_filterbank_matches_librosa():
    import librosa

    expected = librosa.filters.mel(sr=44100, n_fft=1024, n_mels=64, fmin=50, fmax=14000).T  # Slaney, area-normalised
    got = create_model(msclap_2022_config()).audio_tower.frontend.mel_basis.numpy()
    assert got.shape == expected.shape == (513, 64)
    assert np.abs(got - expected).max() <= 1e-6 * expected.max()


def test_audio_embeddings_match_msclap(reference, ours, clips):
    assert_parity(ours.embed_audio(clips, 44100), ms_audio(reference, clips))


def test_audio_embeddings_match_at_batch_one(reference, ours, clips):
    assert_parity(ours.embed_audio(clips[1:2], 44100), ms_audio(reference, clips[1:2]))


def test_text_embeddings_match_msclap(reference, ours):
    assert_parity(ours.embed_text(PROMPTS), reference.get_text_embeddings(PROMPTS))


def test_text_embeddings_match_through_the_child_process(reference, msclap_checkpoint):
    isolated = load_torch_model(msclap_checkpoint, isolate_text=True)
    assert_parity(isolated.embed_text(PROMPTS), reference.get_text_embeddings(PROMPTS))


def test_logit_scale_and_similarity_match(reference, ours, clips):
    assert ours.logit_scale.item() == pytest.approx(reference.clap.logit_scale.item(), abs=0)
    expected = reference.compute_similarity(ms_audio(reference, clips), reference.get_text_embeddings(PROMPTS))
    got = ours.similarity(ours.embed_audio(clips, 44100), ours.embed_text(PROMPTS))
    assert torch.allclose(got, expected, atol=1e-3), (got - expected).abs().max()


def test_embeddings_are_deterministic(ours, clips):
    assert torch.equal(ours.embed_audio(clips, 44100), ours.embed_audio(clips, 44100))


def test_resampling_inside_embed_audio(reference, ours, clips):
    """A 22.05 kHz input is resampled to 44.1 kHz inside `embed_audio`. Reference: SciPy's
    polyphase resampler up to 44.1 kHz, then msclap (measured agreement 1.4e-6, as at 44.1 kHz;
    silence or a dropped input would be ≥ 1.8e-3 away, see the first test)."""
    from scipy.signal import resample_poly

    low = resample_poly(clips.numpy().astype(np.float64), 1, 2, axis=-1).astype(np.float32)
    back = torch.from_numpy(resample_poly(low.astype(np.float64), 2, 1, axis=-1).astype(np.float32))
    assert_parity(ours.embed_audio(torch.from_numpy(low), 22050), ms_audio(reference, back))


def test_clap_classify_gives_msclaps_probabilities(reference, msclap_checkpoint, clips, sounds45):
    """The `clap-classify` console script (a fresh process: its own loading and prompt embedding)
    against msclap's softmax over `compute_similarity` for the same labels and template."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    labels = ["hammer metal", "water splash", "clanking dishes", "bicycle bell", "a dog barking"]
    exe = Path(sys.executable).parent / "clap-classify"
    done = subprocess.run([str(exe), *[str(sounds45 / c) for c in CLIPS], "--labels", ",".join(labels),
                           "--weights", str(msclap_checkpoint), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    got = torch.tensor([[row["probabilities"][label] for label in labels] for row in rows])
    text = reference.get_text_embeddings([f"This is a sound of {label}." for label in labels])
    expected = F.softmax(reference.compute_similarity(ms_audio(reference, clips), text), dim=-1)
    assert (got - expected).abs().max().item() <= 1e-5, (got - expected).abs().max()
    assert (expected.amax(-1) - expected.amin(-1)).min().item() > 1e-3  # the labels are told apart
