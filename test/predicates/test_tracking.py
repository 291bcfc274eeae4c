"""Hysteresis, minimum duration and event refractory logic on synthetic score sequences."""
from __future__ import annotations

from clap_core.predicates.config_file import parse_predicate_config
from clap_core.predicates.tracking import PredicateTracker


def _tracker(**fields) -> PredicateTracker:
    cfg = parse_predicate_config({"predicates": {"p": {"prompt": "x", **fields}}})
    return PredicateTracker(cfg.get("p"))


def _run(tracker: PredicateTracker, scores: list[float], hop: float = 0.5):
    steps = [tracker.step(s, (i + 1) * hop) for i, s in enumerate(scores)]
    return [s.value for s in steps], [s.fired for s in steps]


def test_hysteresis_holds_between_off_and_on() -> None:
    values, fired = _run(_tracker(threshold=0.6, hysteresis=0.2),
                         [0.3, 0.59, 0.61, 0.45, 0.41, 0.39, 0.55, 0.6])
    assert values == [False, False, True, True, True, False, False, True]
    assert fired == [False, False, True, False, False, False, False, True]


def test_no_hysteresis_flickers_with_the_score() -> None:
    values, _ = _run(_tracker(threshold=0.5, hysteresis=0.0), [0.49, 0.5, 0.49, 0.51])
    assert values == [False, True, False, True]


def test_min_duration_delays_and_filters_blips() -> None:
    # hop 0.5 s, min 1.0 s: on at the 3rd consecutive on-window (t - t_on >= 1.0)
    values, _ = _run(_tracker(min_duration_s=1.0, hysteresis=0.0),
                     [0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.1])
    assert values == [False, False, False, False, True, True, False]


def test_event_fires_once_per_onset() -> None:
    values, fired = _run(_tracker(kind="event", refractory_s=0.0), [0.2, 0.8, 0.9, 0.9, 0.1, 0.7])
    assert values == [False, True, False, False, False, True]
    assert values == fired


def test_event_refractory_blocks_quick_second_onset() -> None:
    # onsets at t=1.0 and t=2.0 (blocked, 1.0 s < 2.0 s refractory) and t=3.5 (allowed)
    scores = [0.1, 0.9, 0.1, 0.9, 0.1, 0.1, 0.9]
    values, _ = _run(_tracker(kind="event", refractory_s=2.0, hysteresis=0.0), scores)
    assert values == [False, True, False, False, False, False, True]


def test_nan_score_holds_state_and_never_fires() -> None:
    t = _tracker(hysteresis=0.0)
    assert t.step(0.9, 0.5).value is True
    held = t.step(float("nan"), 1.0)
    assert held.value is True and held.fired is False
    assert t.step(0.1, 1.5).value is False
    ev = _tracker(kind="event")
    assert ev.step(float("nan"), 0.5).value is False


def test_stamps_jumping_back_by_hours_do_not_freeze_min_duration_or_refractory() -> None:
    """A publisher whose clock is set back 3 h mid-stream (NTP, a looped bag): audio time runs on from
    the new stamps. Counting durations against the old, later times kept a state predicate False and
    an event silent for 3 hours; after the jump they count from the first window at the new time."""
    hop, back = 0.5, 3 * 3600.0
    state = _tracker(min_duration_s=1.0, hysteresis=0.0)
    assert state.step(0.9, 10.0).value is False  # on since 10.0; 1 s still to go
    after = [state.step(0.9, 10.0 - back + i * hop).value for i in range(1, 5)]
    assert after == [False, False, True, True]  # the jump counts as no time: on 1.0 s of windows later

    event = _tracker(kind="event", refractory_s=2.0, hysteresis=0.0)
    assert event.step(0.9, 10.0).value is True
    t = 10.0 - back
    fired = [event.step(s, t + i * hop).value for i, s in enumerate([0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.9], 1)]
    # onsets 0.5 s of audio after the fire (blocked: < 2.0 s refractory) and 3.0 s (allowed)
    assert fired == [False, False, False, False, False, False, True]


def test_stamps_jumping_forward_count_one_hop_not_the_jump() -> None:
    """Hours of stamps skipped were not heard: they must not satisfy a minimum duration."""
    cfg = parse_predicate_config({"predicates": {"p": {"prompt": "x", "min_duration_s": 1.0, "hysteresis": 0.0}}})
    t = PredicateTracker(cfg.get("p"), max_step_s=0.5)
    values = [t.step(0.9, at).value for at in (10.0, 10.0 + 3 * 3600, 10.5 + 3 * 3600, 11.0 + 3 * 3600)]
    assert values == [False, False, True, True]  # on-time 0, 0.5 (the jump), 1.0, 1.5
