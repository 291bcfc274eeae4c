"""The engine's glue with the stand-in BandModel (see conftest): decisions, reload, bad audio."""
from __future__ import annotations

import numpy as np
import pytest

from clap_core.errors import ConfigError
from clap_core.predicates import PredicateEngine, parse_predicate_config

SR = 8000
CFG = {"predicates": {"low": {"prompt": "a low tone"}, "high": {"prompt": "a high tone", "kind": "event"}}}


@pytest.fixture
def scene(tone) -> np.ndarray:
    return _scene(tone)


def _scene(tone) -> np.ndarray:
    """4 s quiet noise, 6 s low tone, 4 s noise, 6 s high tone, 4 s noise (24 s)."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(SR * 24) * 0.003).astype(np.float32)
    x[SR * 4:SR * 10] += tone(250, 6, SR)
    x[SR * 14:SR * 20] += tone(3000, 6, SR)
    return x


def _engine(model, cfg=CFG, hop=0.5, window=2.0) -> PredicateEngine:
    return PredicateEngine(model, parse_predicate_config(cfg), window_s=window, hop_s=hop)


def test_predicates_follow_the_sounds(band_model, scene) -> None:
    eng = _engine(band_model)
    results = eng.push(scene, SR, 0.0) + eng.flush()
    assert results and all(r.names == ["low", "high"] for r in results)
    scores = np.array([r.scores for r in results])
    assert np.all((scores >= 0) & (scores <= 1))
    for r in results:
        mid = 0.5 * (r.t_start + r.t_end)
        if 5.0 <= mid <= 9.0:
            assert r.value("low") and r.score("low") > 0.5
        if mid < 3.0 or 11.0 < mid < 13.0 or mid > 21.0:
            assert not r.value("low")
    high_fired = [r.t_end for r in results if "high" in r.fired]
    assert len(high_fired) == 1 and 14.0 < high_fired[0] <= 16.5  # once, at onset
    assert sum(r.value("high") for r in results) == 1  # an event is true only when it fires


def test_chunked_stream_equals_one_push(band_model, scene) -> None:
    x = scene.copy()
    whole = _engine(band_model)
    a = whole.push(x, SR, 0.0) + whole.flush()
    live = _engine(band_model)
    b = [r for i in range(0, len(x), 512) for r in live.push(x[i:i + 512], SR, i / SR)] + live.flush()
    assert [(r.t_end, r.values) for r in a] == [(r.t_end, r.values) for r in b]
    assert np.allclose([r.scores for r in a], [r.scores for r in b], atol=1e-4)


def test_prompts_embedded_once_and_text_tower_released(band_model, scene) -> None:
    eng = _engine(band_model)
    eng.push(scene, SR, 0.0)
    eng.push(scene, SR, 24.0)
    assert band_model.text_calls == 1 and band_model.released == 1


def test_hot_reload_and_bad_reload_keeps_old_set(band_model, scene) -> None:
    eng = _engine(band_model)
    x = scene.copy()
    eng.push(x[:SR * 7], SR, 0.0)
    eng.set_config(parse_predicate_config({"predicates": {"low": {"prompt": "a low tone"},
                                                          "mid": {"prompt": "a mid tone"}}}))
    assert eng.names == ["low", "mid"] and band_model.text_calls == 2
    bad = parse_predicate_config({"predicates": {"x": {"prompt": "a low tone",
                                                       "prototypes": {"positive": [1.0, 0.0]}}}})
    with pytest.raises(ConfigError, match="predicates.x.prototypes.positive: 2 values"):
        eng.set_config(bad)
    results = eng.push(x[SR * 7:], SR, 7.0)
    assert results and all(r.names == ["low", "mid"] for r in results)
    assert results[0].value("low")  # the unchanged predicate kept its state through the reload


def test_nonfinite_audio_is_skipped_not_raised(band_model, scene) -> None:
    eng = _engine(band_model, hop=1.0)
    x = scene.copy()
    x[SR * 6] = np.nan
    results = eng.push(x, SR, 0.0)
    skipped = [r for r in results if r.skipped]
    assert skipped and all("nonfinite" in r.flags and np.isnan(r.scores).all() for r in skipped)
    assert all(r.t_start <= 6.0 < r.t_end for r in skipped)
    assert any(not r.skipped and r.value("low") for r in results)
    assert all(r.to_json()["predicates"]["low"]["score"] is None for r in skipped)


def test_prototypes_raise_scores_of_the_calibrated_sound(band_model, scene, tone) -> None:
    """Prototypes of the high tone override a prompt that names another sound (weight 1)."""
    cfg = {"predicates": {"clang": {"prompt": "a mid tone"}}}
    eng = _engine(band_model, cfg)
    x = scene.copy()
    emb_pos = band_model.embed_audio(__import__("torch").from_numpy(tone(3000, 2, SR)[None]), SR)[0]
    emb_neg = band_model.embed_audio(__import__("torch").from_numpy(x[None, :SR * 2]), SR)[0]
    plain = eng.push(x, SR, 0.0)
    cfg["predicates"]["clang"]["prototypes"] = {"positive": emb_pos.tolist(), "negative": emb_neg.tolist(),
                                                "weight": 1.0}
    eng2 = _engine(band_model, cfg)
    proto = eng2.push(x, SR, 0.0)
    in_high = [i for i, r in enumerate(proto) if 15 <= 0.5 * (r.t_start + r.t_end) <= 19]
    assert all(proto[i].value("clang") for i in in_high)
    assert not any(plain[i].value("clang") for i in in_high)


def test_push_many_equals_pushing_one_by_one(band_model, scene) -> None:
    chunks = [(scene[i:i + 1600], SR, i / SR) for i in range(0, len(scene), 1600)]
    one = _engine(band_model)
    a = [r for c in chunks for r in one.push(*c)]
    many = _engine(band_model)
    b = many.push_many(chunks[:50]) + many.push_many(chunks[50:])
    assert [(r.t_end, r.values, r.flags) for r in a] == [(r.t_end, r.values, r.flags) for r in b]
    assert np.allclose([r.scores for r in a], [r.scores for r in b], atol=1e-5)
