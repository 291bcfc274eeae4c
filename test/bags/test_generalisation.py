"""Prompts-only predicates for sounds the default model never trained on: the gen1 bag.

gen1 (test/bags/make_bags.py) holds sfx_pool clips of four classes kept out of every training run
(training/build_default.py HELD_OUT_FOR_BAG) among five other sounds, over room noise; the YAML
(test/bags/generalisation.yaml) was written from the class names and never tuned on the bag.
Measured 2026-12-04 with default model v3 (its trained head silent for these prompts: none is
like a training caption), 5-s windows, hop 0.5 s, events scored by their best ~1-s part: thunder
F1 per window 0.95, water_flowing 0.77 (3 false alarms; delays 2.3 / 0.6 s); doorbell and
door_closed (events, 0.5-0.8-s clips) both 2 of 2 (delays ≤ 0.9 s), no false alarms. (v2, the
ungated head: water_flowing 1.00 with none, but doorbell 1 of 2 with 2 false alarms and
door_closed 1 false alarm.) Events count as detected when they fire; their per-window F1 only
counts the firing window, so it is not asserted.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from clap_core.predicates import PredicateEngine, load_predicate_config
from clap_core.predicates.metrics import read_labels, score_timeline
from clap_ros.replay import open_source, replay

HERE = Path(__file__).resolve().parent
BAG = HERE / "data" / "gen1_stamped_mcap"
MIN_STATE_F1 = 0.7  # measured 0.77 (water_flowing) and 0.95
MIN_DETECTED = {"doorbell": 2, "door_closed": 2}
MAX_FALSE_ALARMS = {"doorbell": 1, "door_closed": 1, "thunder": 0, "water_flowing": 3}
MAX_DELAY_S = 4.5


def _bag_scores(model, config: Path) -> dict:
    engine = PredicateEngine(model, load_predicate_config(config), window_s=5.0, hop_s=0.5)
    results = list(replay(engine, open_source(BAG)))
    timeline = [r.to_json(results[0].t_start) for r in results]
    return {s.name: s for s in score_timeline(timeline, read_labels(HERE / "data" / "gen1.labels.json"))}


@pytest.fixture(scope="module")
def scores(default_model) -> dict:
    return _bag_scores(default_model, HERE / "generalisation.yaml")


@pytest.mark.parametrize("name", ["thunder", "water_flowing"])
def test_unseen_states_are_heard(scores, name):
    s = scores[name]
    assert s.f1 >= MIN_STATE_F1 and s.detected == s.events and s.max_delay_s <= MAX_DELAY_S, s


@pytest.mark.parametrize("name", sorted(MIN_DETECTED))
def test_unseen_events_fire(scores, name):
    s = scores[name]
    assert s.detected >= MIN_DETECTED[name] and s.max_delay_s is not None and s.max_delay_s <= MAX_DELAY_S, s


def test_false_alarms_among_the_other_sounds(scores):
    assert all(s.false_alarms <= MAX_FALSE_ALARMS[name] for name, s in scores.items()), scores


# Few-shot calibration (bench/calibrate_gen.py; docs/predicates.md "Calibration"): sfx_pool recordings
# of the bag's classes that are not in the bag (test/bags/gen1_examples.csv: 2 positives per predicate,
# doorbell 1, as sfx_pool has no other), negatives from other classes. Measured 2026-12-03: held-out
# (leave-one-recording-out) F1 per window door_closed 0.41 -> 0.34 and thunder 0.62 -> 0.51 (kept:
# the fit lost to the prompt on held-out recordings), water_flowing 0.42 -> 0.95 (calibrated);
# doorbell refused (1 positive). Bag macro F1 per window 0.524 prompts only, 0.524 calibrated.
MIN_MACRO_AFTER = 0.47  # measured 0.524, margin 0.05


def test_calibration_reports_held_out_figures_and_does_not_hurt_the_bag(default_model, sfx_pool, tmp_path, capsys):
    from clap_core.predicates.metrics import macro_f1
    from clap_ros.predicates_cli import main

    rows = (HERE / "gen1_examples.csv").read_text().splitlines()
    examples = tmp_path / "examples.csv"
    examples.write_text("\n".join([rows[0]] + [f"{sfx_pool / r}" for r in rows[1:]]) + "\n")
    out = tmp_path / "calibrated.yaml"
    assert main(["calibrate", str(HERE / "generalisation.yaml"), "--examples", str(examples), "--out", str(out)]) == 0
    report = capsys.readouterr()
    lines = {line.split(":")[0]: line for line in report.out.splitlines()}
    assert set(lines) == set(MAX_FALSE_ALARMS), report.out
    assert all("held-out (leave-one-recording-out) F1 per window" in line for line in lines.values())
    assert "KEPT" in lines["doorbell"] and "1 positive recording cannot be checked" in lines["doorbell"]
    warned = [w for w in report.err.splitlines() if w.startswith("warning: ")]
    assert sorted(w.split()[1].rstrip(":") for w in warned) == ["door_closed", "thunder", "water_flowing"], report.err
    before, after = _bag_scores(default_model, HERE / "generalisation.yaml"), _bag_scores(default_model, out)
    assert macro_f1(list(after.values())) >= max(MIN_MACRO_AFTER, macro_f1(list(before.values())) - 0.02), after
    assert all(after[n].false_alarms <= MAX_FALSE_ALARMS[n] for n in after), after
