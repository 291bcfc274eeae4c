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
    assert rep.f1_heldout > rep.f1_before and rep.f1_heldout == pytest.approx(1.0), rep
    assert not rep.kept and "only 3 positive recordings" in rep.warning  # 3 < FEW_POSITIVES: warned
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


def _recs(rng: np.random.Generator, spec: tuple[tuple[int, bool], ...]) -> list:
    """Synthetic per-recording windows (unit embeddings, prompt scores) for the fitting internals."""
    from clap_core.predicates.calibrate import _Rec

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    out = []
    for n, positive in spec:
        whole = unit(rng.standard_normal((n, 6)) + (2.0 if positive else -2.0) * np.eye(6)[0])
        prompt = rng.uniform(0.3, 0.7, n)
        out.append(_Rec(prompt, prompt[:, None], whole, whole[:, None], whole, whole, np.full(n, positive), positive))
    return out


def test_reported_quality_is_leave_one_recording_out() -> None:
    """The calibrator's claim: a recording's reported (held-out) scores come from a fit that never
    saw it. Changing recording i's own evidence (what prototypes are built from) must leave its
    held-out scores unchanged while other recordings' scores move; an in-sample calibrator fails."""
    from clap_core.predicates.calibrate import heldout_scores

    p = parse_predicate_config({"predicates": {"x": "a low tone"}}).get("x")
    recs = _recs(np.random.default_rng(0), ((4, True), (3, True), (4, True), (3, False), (4, False)))
    before = heldout_scores(p, recs, use_protos=True)
    recs[0].evidence_whole = -recs[0].evidence_whole  # only what recording 0 teaches the prototypes changes
    after = heldout_scores(p, recs, use_protos=True)
    np.testing.assert_allclose(after[0], before[0], atol=1e-12)
    assert max(np.abs(a - b).max() for a, b in zip(after[1:], before[1:])) > 1e-3  # the others see it


def _mixed_examples(tmp_path: Path, tone, n_pos: int) -> Path:
    rows = ["path,predicate,label"]
    for i in range(n_pos):
        sf.write(tmp_path / f"hi{i}.wav", tone(2800 + 100 * i, 1.5, SR), SR)
        rows.append(f"hi{i}.wav,clang,pos")
    for i in range(3):
        sf.write(tmp_path / f"mid{i}.wav", tone(1000 + 100 * i, 1.5, SR), SR)
        rows.append(f"mid{i}.wav,clang,neg")
    (tmp_path / "examples.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "examples.csv"


def test_one_positive_is_refused_and_the_file_kept(tmp_path, band_model, tone) -> None:
    cfg = parse_predicate_config({"predicates": {"clang": {"prompt": "a mid tone", "threshold": 0.6}}})
    new, (rep,) = calibrate(band_model, cfg, read_examples(_mixed_examples(tmp_path, tone, 1)), window_s=2.0)
    assert "cannot be checked on a held-out one" in rep.kept and new.get("clang") == cfg.get("clang")
    assert "KEPT the file's settings" in rep.line() and rep.line().count("\n") == 0


def test_examples_are_placed_in_room_audio_and_windowed_like_the_node(tmp_path, band_model, tone) -> None:
    """A 1.5-s example becomes, per level, a stretch of room tone with the sound in the middle, cut
    at the node's hop: windows before the sound hold none of it, and the level follows `snrs_db`."""
    from clap_core.predicates.placement import Placement, example_windows, mixes

    sf.write(tmp_path / "hi.wav", tone(3000, 1.5, SR), SR)
    placement = Placement(snrs_db=(30.0, 0.0))
    (loud, ev), (faint, _) = mixes(tone(3000, 1.5, SR), SR, 2.0, placement)
    assert (ev.start, ev.end) == (2.0, 3.5) and len(loud) == int(5.5 * SR)
    inside = slice(int(2.0 * SR), int(3.5 * SR))
    ratio_db = 20 * np.log10(np.std(loud[inside]) / np.std(loud[:int(2.0 * SR)]))
    assert 29.0 < ratio_db < 31.5 and 2.0 < 20 * np.log10(np.std(faint[inside]) / np.std(faint[:SR])) < 3.5
    w = example_windows(band_model, tmp_path / "hi.wav", 2.0, placement, hop_s=0.5)
    np.testing.assert_allclose(w.starts[:8], np.arange(8) * 0.5)  # the node's hop, from the mix's start
    # event 2.0-3.5 s; a window holds it with >= 0.75 s inside (half of min(2, 1.5)), grazes it with less
    assert list(w.holds[w.mix == 0]) == [0, -1, 1, 1, 1, 1, -1, 0]


def _scored_recs(pos_whole: float, pos_part: float, neg_whole: float, neg_part: float) -> list:
    """Three positive and three negative recordings of 4 windows × 5 parts with given prompt scores
    (one part of each window at `*_part`, the others at the whole window's score)."""
    from clap_core.predicates.calibrate import _Rec

    rng, out = np.random.default_rng(5), []
    for positive, whole_s, part_s in ((True, pos_whole, pos_part), (False, neg_whole, neg_part)):
        for _ in range(3):
            whole = np.clip(whole_s + rng.normal(0, 0.02, 4), 0, 1)
            parts = np.repeat(whole[:, None], 5, axis=1)
            parts[:, 2] = np.clip(part_s + rng.normal(0, 0.02, 4), 0, 1)
            emb = rng.standard_normal((4, 6))
            out.append(_Rec(whole, parts, emb, np.repeat(emb[:, None], 5, axis=1), emb, emb,
                            np.full(4, positive), positive))
    return out


def test_calibration_chooses_part_pooling_for_a_short_sound_and_keeps_whole_where_parts_mislead() -> None:
    """A prompts-only state is scored on whole windows. When its positives stand out in one part
    only (a short sound), the fit switches it to `max` over parts and says so; when whole windows
    separate and a negative's part is what stands out (a moment of hiss), it stays `whole`."""
    from clap_core.predicates.calibrate import _calibrate_one

    p = parse_predicate_config({"predicates": {"x": "a short clatter"}}).get("x")
    assert p.pooling == "whole"
    short, report = _calibrate_one(p, _scored_recs(0.3, 0.9, 0.3, 0.4), False, None)
    assert short.pooling == "max" and "pooling whole → max" in report.line(), report.line()
    assert report.f1_before < 0.6 and report.f1_heldout == pytest.approx(1.0)
    long_, report = _calibrate_one(p, _scored_recs(0.8, 0.8, 0.2, 0.9), False, None)
    assert long_.pooling == "whole" and "pooling" not in report.line(), report.line()
