"""Manifests, crops and augmentations, on real sounds45 recordings where audio is involved."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clap_core.clips import crop, scale_to_snr
from clap_core.errors import ManifestError
from training.config import AugmentSection
from training import data as D
from training import manifests as M
from train_fixtures import clip_rows, manifests  # noqa: F401 (pytest fixtures)

TEMPLATES = ["a sound of {}.", "{} heard"]


def test_csv_rows_with_one_path_gather_captions(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,caption\na.wav,dog barks\nb.wav,rain\na.wav,a dog barking\na.wav,dog barks\n")
    clips = M.read_manifest(path, TEMPLATES)
    assert [c.path for c in clips] == [tmp_path / "a.wav", tmp_path / "b.wav"]
    assert clips[0].captions == ("dog barks", "a dog barking")  # duplicates dropped, order kept


def test_labelled_rows_become_template_captions_and_root_applies(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,label,class\nx/a.flac,chainsaw,Chainsaw\n")
    (clip,) = M.read_manifest(path, TEMPLATES, audio_root="/data")
    assert clip.captions == ("a sound of chainsaw.", "chainsaw heard")
    assert clip.label == "chainsaw"
    assert str(clip.path) == "/data/x/a.flac"


def test_jsonl_caption_lists(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"path": "/abs/a.wav", "captions": ["one", "two"]}) + "\n\n"
                    + json.dumps({"path": "b.wav", "caption": "three"}) + "\n")
    clips = M.read_manifest(path, TEMPLATES)
    assert clips[0].captions == ("one", "two") and str(clips[0].path) == "/abs/a.wav"
    assert clips[1].captions == ("three",)


@pytest.mark.parametrize("name, text, message", [
    ("m.csv", "file,caption\na.wav,x\n", "no 'path' column"),
    ("m.csv", "path,text\na.wav,x\n", "needs a 'caption' or a 'label' column"),
    ("m.csv", "path,caption\n", "no rows"),
    ("m.csv", "path,caption\na.wav,\n", "line 2: needs a non-empty 'caption'"),
    ("m.csv", "path,caption\n,dog\n", "line 2: missing or empty 'path'"),
    ("m.jsonl", '{"path": "a.wav", "caption": "x"}\n{"path": "b.wav", caption}\n', "line 2: not valid JSON"),
    ("m.jsonl", '["a.wav", "x"]\n', "line 1: expected a JSON object"),
    ("m.txt", "a.wav dog\n", "unknown format"),
])
def test_bad_manifests_say_what_and_where(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ManifestError, match=message) as info:
        M.read_manifest(path, TEMPLATES)
    assert str(path) in str(info.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        M.read_manifest(tmp_path / "nope.csv", TEMPLATES)


def test_split_is_seeded_and_disjoint():
    clips = [M.Clip(Path(f"{i}.wav"), (str(i),)) for i in range(20)]
    train, val = M.split_clips(clips, 0.25, seed=3)
    assert len(val) == 5 and not set(train) & set(val) and len(train) + len(val) == 20
    assert M.split_clips(clips, 0.25, seed=3) == (train, val)
    assert M.split_clips(clips, 0.25, seed=4) != (train, val)
    with pytest.raises(ManifestError, match="need at least 2"):
        M.split_clips(clips[:1], 0.5, seed=0)


def test_crop_tiles_short_clips_and_stays_inside_long_ones():
    wave = np.arange(10, dtype=np.float32)
    assert np.array_equal(crop(wave, 25, None), np.concatenate([wave, wave, wave[:5]]))
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = crop(wave, 4, rng)
        assert len(out) == 4 and np.array_equal(np.diff(out), np.ones(3))  # a contiguous window
        tiled = crop(wave, 15, rng)
        assert len(tiled) == 15 and np.all(np.diff(tiled) % 10 == 1)  # continuous across the seam


def test_scale_to_snr():
    rng = np.random.default_rng(0)
    sig, noise = rng.standard_normal(8000).astype(np.float32), 5 * rng.standard_normal(8000).astype(np.float32)
    scaled = scale_to_snr(sig, noise, 10.0)
    assert 10 * np.log10(np.mean(sig ** 2) / np.mean(scaled ** 2)) == pytest.approx(10.0, abs=1e-3)
    assert not scale_to_snr(np.zeros(10, np.float32), noise[:10], 10.0).any()


def test_real_clips_load_resampled_and_unreadable_ones_are_skipped(manifests, sounds45, capsys):
    clips = M.read_manifest(manifests["train"], TEMPLATES, audio_root=sounds45)
    broken = M.Clip(sounds45 / "no_such.flac", ("x",))
    kept, waves = D.load_all(clips[:3] + [broken], 16000, "training")
    assert kept == clips[:3]
    assert all(w.dtype == np.float32 and w.ndim == 1 and 0.5 * 16000 < w.size < 10 * 16000 for w in waves)
    assert "no_such.flac" in capsys.readouterr().err
    with pytest.raises(ManifestError, match="none of the 1 audio files"):
        D.load_all([broken], 16000, "training")


def test_training_samples_are_seeded_by_epoch_and_clip(manifests, sounds45):
    clips = M.read_manifest(manifests["train"], TEMPLATES, audio_root=sounds45)[:4]
    kept, waves = D.load_all(clips, 16000, "training")
    augment = AugmentSection(gain_prob=1.0, shift_prob=1.0, mix_prob=1.0)
    ds = D.ClipDataset(kept, waves, 16000, 1.0, train=True, seed=7, augment=augment)
    first = [ds[i] for i in range(4)]
    again = [ds[i] for i in range(4)]
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, again))
    assert all(len(w) == 16000 for w, _, _ in first)
    assert all(c in clip.captions for (_, c, _), clip in zip(first, kept))
    ds.set_epoch(1)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, (ds[i] for i in range(4))))
    plain = D.ClipDataset(kept, waves, 16000, 1.0, train=False)
    w, caption, _ = plain[0]
    assert np.array_equal(w.numpy(), crop(waves[0], 16000, None)) and caption == kept[0].captions[0]


def test_augmentations_switch_off_independently(manifests, sounds45):
    clips = M.read_manifest(manifests["train"], TEMPLATES, audio_root=sounds45)[:2]
    kept, waves = D.load_all(clips, 16000, "training")
    off = AugmentSection(random_crop=False, gain_prob=0.0, shift_prob=0.0, mix_prob=0.0)
    ds = D.ClipDataset(kept, waves, 16000, 1.0, train=True, augment=off)
    assert np.array_equal(ds[0][0].numpy(), crop(waves[0], 16000, None))
    gain_only = AugmentSection(random_crop=False, gain_prob=1.0, gain_db=(6.0, 6.0), shift_prob=0.0, mix_prob=0.0)
    ds = D.ClipDataset(kept, waves, 16000, 1.0, train=True, augment=gain_only)
    assert np.allclose(ds[0][0].numpy(), crop(waves[0], 16000, None) * 10 ** (6 / 20), rtol=1e-5)


def test_relevance_marks_shared_captions():
    clips = [M.Clip(Path("a"), ("dog", "barking")), M.Clip(Path("b"), ("dog",))]
    captions, rel = D.relevance(clips)
    assert captions == ["dog", "barking"]
    assert rel.tolist() == [[True, True], [True, False]]


def test_uncached_clips_give_the_same_samples(manifests, sounds45, capsys):
    clips = M.read_manifest(manifests["train"], TEMPLATES, audio_root=sounds45)[:3]
    missing = M.Clip(sounds45 / "gone.flac", ("x",))
    cached = D.ClipDataset(*D.load_all(clips, 16000, "training"), 16000, 1.0, train=True, seed=1,
                           augment=AugmentSection(mix_prob=1.0))
    kept, lazy = D.load_all(clips + [missing], 16000, "training", cache=False)
    assert isinstance(lazy, D.LazyWaves) and kept == clips and "gone.flac" in capsys.readouterr().err
    uncached = D.ClipDataset(kept, lazy, 16000, 1.0, train=True, seed=1, augment=AugmentSection(mix_prob=1.0))
    for i in range(3):
        assert np.array_equal(cached[i][0], uncached[i][0]) and cached[i][1] == uncached[i][1]


def test_background_lists_need_only_paths(tmp_path, sounds45):
    manifest = tmp_path / "bg.csv"
    manifest.write_text("path\nChainsaw/a.flac\n")
    assert M.read_audio_list(manifest) == [tmp_path / "Chainsaw/a.flac"]
    assert M.read_audio_list(sounds45 / "Chainsaw")  # a folder: its audio files
    with pytest.raises(ManifestError, match="holds no audio files"):
        M.read_audio_list(tmp_path)
