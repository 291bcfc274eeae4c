"""The adaptive background's state machine: warm-up, no learning while anything fires, reset, config.

Logic tests on the band stand-in (conftest.py): its audio embedding is the energy share in three
bands plus a constant, so what the room "is" can be worked out by hand.
"""
from __future__ import annotations

import numpy as np
import pytest

from clap_core.errors import ConfigError
from clap_core.predicates.background import (
    AdaptiveBackground, AdaptiveBackgroundConfig, is_quiet, parse_adaptive_background, quietest_part,
)
from clap_core.predicates.config_file import dump_predicate_config, parse_predicate_config
from clap_core.predicates.engine import PredicateEngine

SR = 8000


def _cfg(**adaptive) -> object:
    return parse_predicate_config({"adaptive_background": {"enabled": True, **adaptive},
                                   "background": ["silence"],
                                   "predicates": {"low": "a low tone", "high": {"prompt": "a high tone"}}})


def test_warm_up_then_running_mean() -> None:
    bg = AdaptiveBackground(AdaptiveBackgroundConfig(enabled=True, rate=0.5, warmup_windows=3, strength=0.5))
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])  # b is normalised to [0, 1] before learning
    x = np.array([[0.6, 0.8]])
    for i in range(2):
        assert bg.observe(a, quiet=True, t_end=float(i))
        assert not bg.state().learned and np.allclose(bg.adjust(x), x)  # still warming up: unchanged
    assert bg.observe(b, quiet=True, t_end=2.0)
    # plain mean of the first 1/rate = 2 windows, then weight 0.5: [1, 0] → [1, 0] → [0.5, 0.5]
    s = bg.state()
    assert s.learned and s.windows_seen == 3 and s.last_update_t == 2.0
    assert np.allclose(bg.adjust(x), x - 0.5 * np.array([0.5, 0.5]))


def test_no_learning_from_windows_where_a_predicate_fires() -> None:
    assert is_quiet([False, False], np.array([0.2, 0.49]), [0.5, 0.5], ())
    assert not is_quiet([False, True], np.array([0.2, 0.1]), [0.5, 0.5], ())  # a state still true
    assert not is_quiet([False, False], np.array([0.2, 0.5]), [0.5, 0.5], ())  # at its threshold
    assert not is_quiet([False, False], np.array([0.2, 0.1]), [0.5, 0.5], ("gap",))
    bg = AdaptiveBackground(AdaptiveBackgroundConfig(enabled=True))
    assert not bg.observe(np.ones(3), quiet=False, t_end=1.0) and bg.state().windows_seen == 0


def test_quietest_part_is_the_lowest_level() -> None:
    x = np.concatenate([np.full(SR, 0.5), np.full(SR, 0.01), np.full(SR, 0.2)])
    assert quietest_part(x, SR, np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])) == 1


def test_a_long_state_is_not_learned_away(band_model, tone) -> None:
    """Room (mid-band hum) for 12 s, then a low tone for 30 s: the state stays true all along and the
    room learned before it is all the background holds (no window of the tone was learned)."""
    room = tone(1100, 12.0, SR, amp=0.05)
    state = tone(1100, 30.0, SR, amp=0.05) + tone(250, 30.0, SR, amp=0.3)
    eng = PredicateEngine(band_model, _cfg(warmup_windows=4, rate=0.1), window_s=5.0, hop_s=0.5)
    before = eng.push(room, SR, 0.0)
    seen = eng.background_state().windows_seen
    assert eng.background_state().learned and seen == len(before)
    after = eng.push(state, SR, 12.0)
    on = [r.value("low") for r in after if r.t_start >= 12.0]
    assert on and all(on), [round(r.score("low"), 3) for r in after]
    assert eng.background_state().windows_seen <= seen + sum(not r.value("low") for r in after)


def test_reset_on_new_recording_and_new_segment(band_model, tone) -> None:
    eng = PredicateEngine(band_model, _cfg(warmup_windows=2), window_s=2.0, hop_s=0.5)
    eng.push(tone(1100, 4.0, SR, amp=0.05), SR, 0.0)
    assert eng.background_state().learned
    eng.reset()
    assert eng.background_state().windows_seen == 0 and eng.background_state().resets == 1
    eng.push(tone(1100, 4.0, SR, amp=0.05), SR, 0.0)
    assert eng.background_state().learned
    eng.push(tone(1100, 1.0, SR, amp=0.05), SR, 50.0)  # a 46-s jump: a new segment, a new source
    s = eng.background_state()
    assert s.resets == 2 and s.windows_seen == 0 and not s.learned


def test_one_window_at_a_time_equals_many(band_model, tone) -> None:
    """Node (a push per chunk) and replay (push_many, batched) see the same learned background."""
    x = np.concatenate([tone(1100, 8.0, SR, amp=0.05), tone(250, 3.0, SR) + tone(1100, 3.0, SR, amp=0.05),
                        tone(1100, 6.0, SR, amp=0.05)])
    step = SR // 10
    one = PredicateEngine(band_model, _cfg(warmup_windows=3))
    live = [r for i in range(0, len(x), step) for r in one.push(x[i:i + step], SR, i / SR)]
    many = PredicateEngine(band_model, _cfg(warmup_windows=3))
    batch = many.push_many((x[i:i + step], SR, i / SR) for i in range(0, len(x), step))
    assert one.background_state().learned and one.background_state() == many.background_state()
    assert [r.values for r in live] == [r.values for r in batch]
    assert np.allclose([r.scores for r in live], [r.scores for r in batch], atol=1e-5)  # batched float sums


def test_yaml_option_validated_and_written_back() -> None:
    assert parse_predicate_config({"predicates": {"a": "x"}}).adaptive_background.enabled is False
    assert parse_adaptive_background(True) == AdaptiveBackgroundConfig(enabled=True)
    cfg = _cfg(rate=0.05)
    assert cfg.adaptive_background == AdaptiveBackgroundConfig(True, 0.05, 10, 0.5)
    assert dump_predicate_config(cfg)["adaptive_background"] == {"enabled": True, "rate": 0.05,
                                                                 "warmup_windows": 10, "strength": 0.5}
    assert "adaptive_background" not in dump_predicate_config(parse_predicate_config({"predicates": {"a": "x"}}))
    with pytest.raises(ConfigError, match=r"^adaptive_background\.rate: must be a number in \(0, 1\], got 2"):
        _cfg(rate=2)
    with pytest.raises(ConfigError, match=r"^adaptive_background\.warm_up: unknown field"):
        _cfg(warm_up=3)
    with pytest.raises(ConfigError, match=r"^adaptive_background: must be true, false or a mapping"):
        parse_predicate_config({"adaptive_background": "on", "predicates": {"a": "x"}})
