"""Calibration: examples manifest, thresholds and prototypes written back, measurable improvement."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clap_core.errors import ConfigError, ManifestError
from clap_core.predicates import PredicateEngine, load_predicate_config, parse_predicate_config, \
    write_predicate_config
from clap_core.predicates.calibrate import calibrate, f1, read_examples

SR = 8000


def _write_examples(tmp_path: Path, tone) -> Path:
    rng = np.random.default_rng(3)
    rows = ["path,predicate,label"]
    for i in range(3):
        hi = tone(2800 + 100 * i, 3, SR) + rng.standard_normal(SR * 3).astype(np.float32) * 0.01
        sf.write(tmp_path / f"hi{i}.wav", hi, SR)
        rows.append(f"hi{i}.wav,clang,pos")
        noise = (rng.standard_normal(SR * 3) * 0.05).astype(np.float32)
        sf.write(tmp_path / f"noise{i}.wav", noise, SR)
        rows.append(f"noise{i}.wav,clang,neg")
    (tmp_path / "examples.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "examples.csv"


def test_calibration_adds_prototypes_that_fix_a_wrong_prompt(tmp_path, band_model, tone) -> None:
    # the prompt names the wrong sound; only examples can tell the engine what "clang" is
    cfg = parse_predicate_config({"predicates": {"clang": {"prompt": "a mid tone"},
                                                 "other": {"prompt": "a low tone"}}})
    examples = read_examples(_write_examples(tmp_path, tone))
    new, reports = calibrate(band_model, cfg, examples, window_s=2.0, hop_s=1.0)
    (rep,) = reports
    assert rep.name == "clang" and rep.n_pos == 3 and rep.n_neg == 3
    assert rep.f1_after > rep.f1_before and rep.f1_after == pytest.approx(1.0)
    clang = new.get("clang")
    assert clang.prototypes is not None and clang.prototypes.weight > 0
    assert new.get("other") == cfg.get("other")  # predicates without examples are untouched
    out = tmp_path / "calibrated.yaml"
    write_predicate_config(new, out)
    loaded = load_predicate_config(out)
    eng = PredicateEngine(band_model, loaded, window_s=2.0, hop_s=1.0)
    unseen = tone(3300, 4, SR)  # a high tone not in the examples
    assert all(r.value("clang") for r in eng.push(unseen, SR, 0.0))
    eng.reset()
    quiet = (np.random.default_rng(9).standard_normal(SR * 4) * 0.05).astype(np.float32)
    assert not any(r.value("clang") for r in eng.push(quiet, SR, 0.0))


def test_examples_errors(tmp_path, band_model) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx.wav,pos\n")
    with pytest.raises(ManifestError, match="columns path,predicate,label"):
        read_examples(bad)
    bad.write_text("path,predicate,label\nx.wav,p,maybe\n")
    with pytest.raises(ManifestError, match=r"bad.csv:2: label must be pos or neg"):
        read_examples(bad)
    bad.write_text("path,predicate,label\nx.wav,nope,pos\n")
    cfg = parse_predicate_config({"predicates": {"p": "a low tone"}})
    with pytest.raises(ConfigError, match="predicate\\(s\\) nope not in the config"):
        calibrate(band_model, cfg, read_examples(bad))


def test_f1() -> None:
    assert f1(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(0.5)
    assert f1(np.array([0, 0]), np.array([0, 0])) == 0.0


def test_prototype_scores_are_leave_one_recording_out() -> None:
    """The calibrator's claim: each recording's prototype margin is computed with prototypes built
    WITHOUT that recording. Expected values are worked out here with NumPy, recording by recording;
    an in-sample calibrator (prototypes from all recordings) gives other margins and fails."""
    from clap_core.predicates.calibrate import _loo_margins

    rng = np.random.default_rng(0)

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    recs = [(unit(rng.standard_normal((n, 6))), y) for n, y in ((3, True), (2, True), (4, True), (2, False), (3, False))]
    expected = []
    for i, (windows, _) in enumerate(recs):
        others = [r for j, r in enumerate(recs) if j != i]
        pos = unit(np.mean([unit(a.mean(0)) for a, y in others if y], axis=0))
        neg = unit(np.mean([unit(a.mean(0)) for a, y in others if not y], axis=0))
        expected.append(windows @ pos - windows @ neg)
    got = _loo_margins(recs)
    np.testing.assert_allclose(got, np.concatenate(expected), atol=1e-12)
    in_sample_pos = unit(np.mean([unit(a.mean(0)) for a, y in recs if y], axis=0))
    in_sample_neg = unit(np.mean([unit(a.mean(0)) for a, y in recs if not y], axis=0))
    in_sample = np.concatenate([a @ in_sample_pos - a @ in_sample_neg for a, _ in recs])
    assert np.abs(in_sample - np.concatenate(expected)).max() > 0.05  # the mutant is visibly different
