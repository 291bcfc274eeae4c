"""Audio files of any shape, rate and length become deterministic model input."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from clap_core import AudioFileError, ClapError, load_model, load_torch_model
from clap_core.audio_io import load_audio, resample
from clap_core.clips import clip_windows
from clap_core.inference import embed_file


def test_stereo_is_averaged_not_concatenated(tmp_path):
    left = np.linspace(-0.5, 0.5, 8000, dtype=np.float32)
    right = np.full(8000, 0.25, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    mono, rate = load_audio(path)
    assert rate == 16000 and mono.shape == (8000,)
    assert np.allclose(mono, (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_24"), ("OGG", "VORBIS")])
def test_formats_and_rates(tmp_path, fmt, subtype):
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)).astype(np.float32)
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, tone, 22050, format=fmt, subtype=subtype)
    wave, rate = load_audio(path)
    assert rate == 22050 and abs(wave.size - tone.size) < 2048
    assert np.corrcoef(wave[:20000], tone[:20000])[0, 1] > 0.95


def test_resample_changes_length_and_keeps_tone():
    tone = np.sin(2 * np.pi * 1000 * np.arange(48000) / 48000).astype(np.float32)
    out = resample(tone, 48000, 44100)
    assert out.shape == (44100,) and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 44100 / out.size - 1000) < 2


def test_short_clips_are_tiled_and_long_clips_fully_covered():
    short = np.arange(10, dtype=np.float32)
    windows = clip_windows(short, 10, clip_seconds=2.5)
    assert windows.shape == (1, 25) and np.array_equal(windows[0, 10:20], short)
    long = np.arange(130, dtype=np.float32)
    windows = clip_windows(long, 10, clip_seconds=5.0)
    assert windows.shape[1] == 50
    assert windows[0, 0] == 0 and windows[-1, -1] == 129  # start and end both covered
    assert np.array_equal(windows, clip_windows(long, 10, clip_seconds=5.0))


def test_missing_corrupt_empty_and_nan_files(tmp_path):
    with pytest.raises(AudioFileError, match="no such audio file"):
        load_audio(tmp_path / "absent.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(AudioFileError, match="corrupt.wav"):
        load_audio(corrupt)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioFileError, match="no samples"):
        load_audio(empty)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.1, np.nan, 0.2], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="NaN"):
        load_audio(nan)


def test_silent_and_very_short_files_embed(tiny_model_dir, tmp_path):
    model = load_model(tiny_model_dir)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    blip = tmp_path / "blip.wav"
    sf.write(blip, np.array([0.5, -0.5, 0.25], dtype=np.float32), 44100, subtype="FLOAT")
    for path in (silent, blip):
        emb = embed_file(model, path)
        assert emb.shape == (model.embed_dim,) and np.isfinite(emb).all()
        assert np.array_equal(emb, embed_file(model, path))


def test_nan_waveform_is_refused_by_the_model(tiny_model_dir):
    model = load_torch_model(tiny_model_dir)
    wave = torch.zeros(1, 16000)
    wave[0, 5] = float("nan")
    with pytest.raises(ClapError, match="NaN"):
        model.embed_audio(wave, 16000)
