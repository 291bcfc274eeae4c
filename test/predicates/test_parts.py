"""Sub-window parts: a 1-s event inside a 5-s window of room noise, with both model kinds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import lfilter

from clap_core.audio_io import resample
from clap_core.config import DEFAULT_TEMPLATE
from clap_core.errors import ConfigError
from clap_core.predicates.config_file import parse_predicate_config
from clap_core.predicates.engine import PredicateEngine

RATE = 16000
EVENT_AT = 2.5  # seconds into the 5-s window


def _event_in_noise(sounds45: Path, rate: int = RATE) -> np.ndarray:
    """The loudest second of a real hammer-on-metal recording at -26 dBFS, placed at 2.5–3.5 s
    over 5 s of low-heavy room noise at -60 dBFS (as the test bags' scene builder makes it)."""
    x, sr = sf.read(sounds45 / "HammerMetal" / "HammerMetal01.flac", dtype="float32", always_2d=True)
    x = resample(x.mean(axis=1)[None], sr, rate)[0]
    start = int(np.argmax(np.convolve(np.abs(x), np.ones(rate), "valid")))
    event = x[start:start + rate]
    event *= 10 ** (-26 / 20) / np.sqrt(np.mean(event**2))
    scene = _noise_only(rate)
    at = int(EVENT_AT * rate)
    scene[at:at + rate] += event
    return scene


def _config(pooling: str | None = None) -> object:
    spec = {"prompt": "hammering metal", "kind": "event"}
    if pooling:
        spec["pooling"] = pooling
    return parse_predicate_config({"predicates": {"hammer": spec}})


def test_pooling_defaults_and_validation() -> None:
    cfg = parse_predicate_config({"predicates": {"a": {"prompt": "x", "kind": "event"}, "b": "y"}})
    assert [p.pooling for p in cfg.predicates] == ["max", "whole"]
    with pytest.raises(ConfigError, match=r"^predicates\.a\.pooling: must be one of max, mean, whole"):
        parse_predicate_config({"predicates": {"a": {"prompt": "x", "pooling": "median"}}})


def test_default_model_hears_a_one_second_event(sounds45: Path, default_model) -> None:
    scene = _event_in_noise(sounds45)
    fired = PredicateEngine(default_model, _config()).push(scene, RATE, 100.0)
    whole = PredicateEngine(default_model, _config("whole")).push(scene, RATE, 100.0)
    assert len(fired) == 1 and fired[0].value("hammer"), fired[0].scores
    assert fired[0].score("hammer") > whole[0].score("hammer") + 0.2  # averaged away without parts
    a, b = fired[0].part_start[0] - 100.0, fired[0].part_end[0] - 100.0
    assert min(b, EVENT_AT + 1.0) - max(a, EVENT_AT) >= 0.5, (a, b)  # the part lies on the event
    assert fired[0].to_json(100.0)["predicates"]["hammer"]["part"] == [round(a, 4), round(b, 4)]


def test_yamnet_parts_are_its_patches(default_torch_model) -> None:
    patch = np.random.default_rng(1).standard_normal((2, 15600)).astype(np.float32) * 0.05
    wave = torch.from_numpy(np.tile(patch, 5))  # same level as its first patch: same normalisation
    whole, parts, spans = default_torch_model.audio_tower.forward_parts(wave, 1.0, 0.5)
    assert torch.equal(whole, default_torch_model.audio_tower(wave))
    assert parts.shape[:2] == (2, len(spans)) and spans[0] == (0.0, 0.975) and spans[1][0] == pytest.approx(0.48)
    first = default_torch_model.audio_tower(wave[:, :15600])  # exactly the first patch's samples
    assert torch.allclose(parts[:, 0], first, atol=1e-5)


def test_cnn14_parts_share_one_conv_pass(sounds45: Path, msclap_checkpoint: Path) -> None:
    """Random weights: the mechanism only. The whole equals `forward`; against the same noise
    without the event, the parts change most where the event is, and not at all far from it."""
    from clap_core import load_torch_model

    model = load_torch_model(str(msclap_checkpoint))
    rate = model.sample_rate
    scene = _event_in_noise(sounds45, rate)
    tower = model.audio_tower
    with torch.no_grad():
        whole, parts, spans = tower.forward_parts(torch.from_numpy(scene)[None], 1.0, 0.5)
        assert torch.allclose(whole, tower(torch.from_numpy(scene)[None]), rtol=1e-4, atol=1e-5)
        _, quiet, _ = tower.forward_parts(torch.from_numpy(_noise_only(rate))[None], 1.0, 0.5)
    change = (parts[0] - quiet[0]).norm(dim=-1)
    a, b = spans[int(change.argmax())]
    assert min(b, EVENT_AT + 1.0) - max(a, EVENT_AT) >= 0.5, (a, b, change)
    assert float(change[0]) < 0.1 * float(change.max()), change  # 2 s before the event: untouched


def _noise_only(rate: int) -> np.ndarray:
    noise = lfilter([1.0], [1.0, -0.95], np.random.default_rng(0).standard_normal(5 * rate))
    return (noise * 10 ** (-60 / 20) / np.sqrt(np.mean(noise**2))).astype(np.float32)
