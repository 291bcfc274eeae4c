"""Robots hear themselves: predicates over synthetic fan / motor-whine / mains-hum noise at -46 dBFS.

- A 1-s hammer blow inside a 5-s window of room noise plus self-noise, with only "silence"/room-tone
  kinds of background as contrast: the event predicate still turns true (its best ~1-s part wins),
  while the whole window's score alone loses to the background.
- gen1n (test/bags/make_bags.py: 10 s of the noise alone, then gen1's clips, all over the noise),
  prompts only (generalisation.yaml), the default model, adaptive background off (as shipped) and on.

Measured 2026-12-03 (bench/self_noise.py prints the same runs, with the label-space baseline beside):
hammer over self-noise, best part 0.93, whole window 0.08 (threshold 0.5). gen1n, engine values,
default model v3 (2026-12-04), adaptive off: thunder F1 per window 0.90, water_flowing 0.75,
doorbell 2/2 and door_closed 2/2 fired, false alarms doorbell 0, door_closed 0, thunder 0,
water_flowing 2 (v2: 0.90 / 0.89, false alarms 4 / 3 / 0 / 1); adaptive on (rate 0.02, warm-up
10, strength 0.5): thunder 0.90, water_flowing 0.77, doorbell 2/2, door_closed 1/2, false alarms
0 / 2 / 0 / 3. Off by default because it does not improve this scene (docs/predicates.md has the
sounds45 scenes, where it does).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter

from clap_core.audio_io import resample
from clap_core.predicates import PredicateEngine, load_predicate_config
from clap_core.predicates.background import AdaptiveBackgroundConfig
from clap_core.predicates import parse_predicate_config
from clap_core.predicates.metrics import read_labels, score_timeline
from clap_ros.replay import open_source, replay
from self_noise import self_noise

HERE = Path(__file__).resolve().parent
BAG = HERE / "data" / "gen1n_stamped_mcap"
RATE = 16000
ROOM_TONE = ["silence", "quiet room tone", "room tone", "background noise", "low electrical hum",
             "a motor whirring"]
MIN_STATE_F1 = 0.7  # measured 0.75-0.77 (water_flowing) and 0.90
MIN_DOORS = {"fixed": 2, "adaptive": 1}  # door_closed fired of 2 (measured 2 and 1)
MAX_FALSE_ALARMS = {"doorbell": 1, "door_closed": 3, "thunder": 0, "water_flowing": 4}
MAX_DELAY_S = 4.5


def _hammer_in_self_noise(sounds45: Path) -> np.ndarray:
    """The loudest second of a real hammer-on-metal recording at -26 dBFS at 2.5–3.5 s of a 5-s window
    of low-heavy room noise (-60 dBFS) plus the robot's own noise (-46 dBFS)."""
    x, sr = sf.read(sounds45 / "HammerMetal" / "HammerMetal01.flac", dtype="float32", always_2d=True)
    x = resample(x.mean(axis=1)[None], sr, RATE)[0]
    start = int(np.argmax(np.convolve(np.abs(x), np.ones(RATE), "valid")))
    event = x[start:start + RATE] * 1.0
    event *= 10 ** (-26 / 20) / np.sqrt(np.mean(event ** 2))
    room = lfilter([1.0], [1.0, -0.95], np.random.default_rng(0).standard_normal(5 * RATE))
    room *= 10 ** (-60 / 20) / np.sqrt(np.mean(room ** 2))
    scene = room.astype(np.float32) + self_noise(5 * RATE, RATE, seed=3)
    scene[int(2.5 * RATE):int(3.5 * RATE)] += event
    return scene


def test_one_second_event_beats_silence_over_self_noise(sounds45: Path, default_model) -> None:
    scene = _hammer_in_self_noise(sounds45)
    scores = {}
    for pooling in ("max", "whole"):
        cfg = parse_predicate_config({"background": ROOM_TONE, "predicates": {
            "hammer": {"prompt": "hammering metal", "kind": "event", "pooling": pooling}}})
        (result,) = PredicateEngine(default_model, cfg).push(scene, RATE, 100.0)
        scores[pooling] = (result.score("hammer"), result.value("hammer"))
    assert scores["max"][1] and scores["max"][0] >= 0.8, scores  # measured 0.93
    assert not scores["whole"][1], scores  # measured 0.08: averaged over the window, room tone wins


def _scores(model, adaptive: AdaptiveBackgroundConfig) -> tuple[dict, object]:
    cfg = dataclasses.replace(load_predicate_config(HERE / "generalisation.yaml"), adaptive_background=adaptive)
    engine = PredicateEngine(model, cfg, window_s=5.0, hop_s=0.5)
    results = list(replay(engine, open_source(BAG)))
    timeline = [r.to_json(results[0].t_start) for r in results]
    labels = read_labels(HERE / "data" / "gen1n.labels.json")
    return {s.name: s for s in score_timeline(timeline, labels)}, engine.background_state()


@pytest.fixture(scope="module", params=["fixed", "adaptive"])
def scored(request, default_model) -> tuple[dict, object]:
    adaptive = AdaptiveBackgroundConfig(enabled=request.param == "adaptive")
    return _scores(default_model, adaptive)


def test_self_noise_scene_per_predicate(scored) -> None:
    scores, state = scored
    for name in ("thunder", "water_flowing"):
        s = scores[name]
        assert s.f1 >= MIN_STATE_F1 and s.detected == s.events and s.max_delay_s <= MAX_DELAY_S, s
    mode = "adaptive" if state.enabled else "fixed"
    for name, least in (("doorbell", 2), ("door_closed", MIN_DOORS[mode])):
        s = scores[name]
        assert s.events == 2 and s.detected >= least and s.max_delay_s <= MAX_DELAY_S, s
    assert all(s.false_alarms <= MAX_FALSE_ALARMS[n] for n, s in scores.items()), scores
    if state.enabled:  # the 10-s lead-in of noise alone is enough to learn the room
        assert state.learned and state.windows_seen >= 10 and state.last_update_t is not None, state
