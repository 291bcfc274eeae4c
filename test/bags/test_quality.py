"""Detection quality on the committed test bags, prompts only, with the default model.

The bags hold sounds45 recordings 03/04, which were kept out of every choice made here (prompt
wording, scoring design, thresholds were chosen on dev scenes of recordings 01/02; see
docs/bags.md). Measured with default model v1 (docs/bags.md): per-predicate F1 per window
0.82–1.0, macro 0.88 on both scenes. With v3 (2026-12-04: the trained head gated to prompts like
its training captions, scored against background prompts that now get the label space alone):
scene1 macro 0.69 (water_splash 0.64, clanking_dishes 0.89, hammer_metal 0.55), scene2 0.95
(0.95 / 0.89 / 1.00), delays 2.5–4.0 s, at most one false-alarm run per predicate (v2: 0.85 / 0.93;
v3 trades these trained classes for unseen ones, model card). Thresholds: the issue's macro target
(0.6) and 0.5 per predicate, under the measured minimum.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clap_core.predicates import PredicateEngine, load_predicate_config
from clap_core.predicates.metrics import macro_f1, read_labels, score_timeline
from clap_ros.replay import open_source, replay

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SCENES = {"scene1": ["scene1_stamped_mcap", "scene1_raw_sqlite3"], "scene2": ["scene2_raw_mcap", "scene2_stamped_sqlite3"]}
MIN_F1 = 0.5  # per predicate and scene (measured min 0.55, v3)
MIN_MACRO_F1 = 0.6  # the target, per scene
MAX_DELAY_S = 4.5  # event start → end of the first true window (5-s window, 0.5-s hop)
MAX_FALSE_ALARMS = 1  # runs of true windows touching no event, per predicate and ~28-s scene


@pytest.fixture(scope="module")
def timelines(default_model) -> dict[str, list]:
    cfg = load_predicate_config(HERE / "predicates.yaml")
    out = {}
    for bags in SCENES.values():
        for bag in bags:
            engine = PredicateEngine(default_model, cfg, window_s=5.0, hop_s=0.5)
            results = list(replay(engine, open_source(DATA / bag)))
            out[bag] = [r.to_json(results[0].t_start) for r in results]
    return out


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_both_layouts_give_the_same_decisions(timelines, scene) -> None:
    a, b = (timelines[bag] for bag in SCENES[scene])
    assert len(a) == len(b) > 40
    for x, y in zip(a, b):
        assert (x["t_start"], x["t_end"]) == (y["t_start"], y["t_end"])
        for name in x["predicates"]:
            assert x["predicates"][name]["value"] == y["predicates"][name]["value"]
            assert x["predicates"][name]["score"] == pytest.approx(y["predicates"][name]["score"], abs=1e-4)


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_f1_delay_and_false_alarms(timelines, scene) -> None:
    scores = score_timeline(timelines[SCENES[scene][0]], read_labels(DATA / f"{scene}.labels.json"))
    report = {s.name: (round(s.f1, 2), s.mean_delay_s, s.false_alarms_per_min) for s in scores}
    assert macro_f1(scores) >= MIN_MACRO_F1, report
    for s in scores:
        assert s.f1 >= MIN_F1, report
        assert s.detected == s.events and s.max_delay_s is not None and s.max_delay_s <= MAX_DELAY_S, report
        assert s.false_alarms <= MAX_FALSE_ALARMS, report


def test_scores_are_bounded_and_predicates_mostly_quiet(timelines) -> None:
    scores = np.array([[p["score"] for p in r["predicates"].values()] for t in timelines.values() for r in t])
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.mean(scores > 0.5) < 0.4  # targets fill about a third of each scene, one predicate at a time
