"""`clap-predicates` subcommands end to end: bag-from-audio → replay → score → plot, and errors.

Replay here uses the suite's tiny real model (`tiny_model_dir`: CNN14 + BERT, small and random):
these tests check the pipeline and its outputs, not detection quality (test_quality.py does that
with the default model).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clap_ros.bag_writer import write_audio_bag
from clap_ros.predicates_cli import main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIG = HERE / "predicates.yaml"


def _lines(text: str) -> list[dict]:
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def test_bag_from_audio_then_replay_json(tmp_path, capsys, sounds45, tiny_model_dir) -> None:
    files = [sounds45 / "HammerMetal" / "HammerMetal03.flac", sounds45 / "WaterSplash" / "WaterSplashing03.flac"]
    bag = tmp_path / "bag"
    assert main(["bag-from-audio", *map(str, files), "--out", str(bag), "--layout", "raw",
                 "--storage", "sqlite3", "--silence", "0.5"]) == 0
    err = capsys.readouterr().err
    assert "raw layout" in err and (bag / "metadata.yaml").is_file()
    total = sum(sf.info(f).duration + 0.5 for f in files)
    assert main(["replay", str(bag), "--config", str(CONFIG), "--weights", str(tiny_model_dir),
                 "--hop", "1.0", "--json"]) == 0
    out = capsys.readouterr()
    rows = _lines(out.out)
    assert len(rows) == int((total - 5.0) // 1.0) + 1
    assert rows[0]["t_start"] == pytest.approx(0.0, abs=1e-3) and rows[0]["t_end"] == pytest.approx(5.0, abs=1e-3)
    assert [r["t_end"] - r["t_start"] for r in rows] == pytest.approx([5.0] * len(rows), abs=1e-3)
    for r in rows:
        assert set(r["predicates"]) == {"water_splash", "clanking_dishes", "hammer_metal"}
        for p in r["predicates"].values():
            assert isinstance(p["value"], bool) and 0.0 <= p["score"] <= 1.0
    assert "x real time" in out.err


def test_replay_reports_dropped_messages(tmp_path, capsys, tiny_model_dir) -> None:
    x = (np.random.default_rng(0).standard_normal(16000 * 12) * 0.05).astype(np.float32)
    bag = write_audio_bag(tmp_path / "dropped", x, 16000, "stamped", "mcap", chunk=1600, drop={90, 91})
    assert main(["replay", str(bag), "--config", str(CONFIG), "--weights", str(tiny_model_dir), "--json"]) == 0
    out = capsys.readouterr()
    assert "gap at 9.000 s: 0.200 s of missing audio" in out.err
    rows = _lines(out.out)
    flagged = [r for r in rows if "gap" in r.get("flags", [])]
    assert flagged and all(r["t_start"] < 9.2 and r["t_end"] > 9.0 for r in flagged)
    assert len(flagged) < len(rows)


def test_replay_batch_size_and_quiet(tmp_path, capsys, tiny_model_dir) -> None:
    x = (np.random.default_rng(1).standard_normal(16000 * 9) * 0.05).astype(np.float32)
    bag = write_audio_bag(tmp_path / "b", x, 16000, "stamped", "mcap", chunk=1600)
    runs = []
    for extra in ([], ["--batch-size", "16", "--quiet"]):
        assert main(["replay", str(bag), "--config", str(CONFIG), "--weights", str(tiny_model_dir), "--json",
                     *extra]) == 0
        out = capsys.readouterr()
        assert "replay:" not in out.err  # no progress bar: stderr is not a terminal here
        runs.append([(r["t_end"], {k: p["value"] for k, p in r["predicates"].items()}) for r in _lines(out.out)])
    assert len(runs[0]) == 9 and runs[0] == runs[1]
    assert main(["replay", str(bag), "--config", str(CONFIG), "--batch-size", "-2"]) == 2
    assert "--batch-size: must be positive" in capsys.readouterr().err


def test_replay_audio_file_and_human_output(tmp_path, capsys, tiny_model_dir) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000 * 6, np.float32), 16000)
    assert main(["replay", str(wav), "--config", str(CONFIG), "--weights", str(tiny_model_dir), "--hop", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "water_splash=" in lines[0]


def test_score_numbers(tmp_path, capsys) -> None:
    """Every number `score` prints, worked out by hand from the labels below (not with metrics.py).

    Windows [i, i+5] for i = 0..7; timeline 12 s = 0.2 min. A window is true when the event fills
    half of min(5, event length), don't care when it only touches, false otherwise.
    p: event [2, 6] (needs 2 s): overlaps 3,4,4,3,2,1,0,0 → T T T T T ? F F.
       values F T T T F F T F → tp 1,2,3; fn 0,4; fp 6; window 5 not scored → 7 windows,
       precision 3/4, recall 3/5, F1 2/3; first on window overlapping the event ends at 6 → delay 4;
       runs of on windows {1,2,3} (hits the event), {6} ([6, 11] misses [2, 6]) → 1 false alarm, 5/min.
    q: event [8, 10] (needs 1 s): overlaps 0,0,0,0,1,2,2,2 → F F F F T T T T; window 7 skipped.
       values T T F T F T T (skip) → tp 5,6; fp 0,1,3; fn 4 → 7 windows, precision 2/5, recall 2/3,
       F1 1/2; delay 10 - 8 = 2; runs {0,1}, {3} ([3, 8] ends where the event starts), {5,6} →
       2 false alarms (3 if counted per window), 10/min. Macro F1 (2/3 + 1/2) / 2 = 7/12.
    """
    p_values = [False, True, True, True, False, False, True, False]
    q_values = [True, True, False, True, False, True, True, False]
    rows = []
    for i, (pv, qv) in enumerate(zip(p_values, q_values)):
        rows.append({"t_start": float(i), "t_end": i + 5.0, "predicates": {
            "p": {"value": pv, "score": 0.9 if pv else 0.1},
            "q": {"value": qv, "score": None if i == 7 else (0.9 if qv else 0.1)}}})
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "l.json").write_text(json.dumps({"events": [{"start": 2.0, "end": 6.0, "predicate": "p"},
                                                            {"start": 8.0, "end": 10.0, "predicate": "q"}]}))
    assert main(["score", str(tmp_path / "t.jsonl"), str(tmp_path / "l.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    got = {s["name"]: s for s in report["predicates"]}
    expected = {
        "p": dict(windows=7, precision=3 / 4, recall=3 / 5, f1=2 / 3, events=1, detected=1, mean_delay_s=4.0,
                  max_delay_s=4.0, false_alarms=1, false_alarms_per_min=5.0),
        "q": dict(windows=7, precision=2 / 5, recall=2 / 3, f1=1 / 2, events=1, detected=1, mean_delay_s=2.0,
                  max_delay_s=2.0, false_alarms=2, false_alarms_per_min=10.0),
    }
    for name, numbers in expected.items():
        assert {k: got[name][k] for k in numbers} == pytest.approx(numbers, abs=1e-9), name
    assert report["macro_f1"] == pytest.approx(7 / 12, abs=1e-9)
    assert main(["score", str(tmp_path / "t.jsonl"), str(tmp_path / "l.json")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["p", "7", "0.75", "0.60", "0.67", "1/1", "4.00", "5.00"]
    assert table[2].split() == ["q", "7", "0.40", "0.67", "0.50", "1/1", "2.00", "10.00"]
    assert table[3].split() == ["macro", "F1", "0.58"]


def test_plot_writes_png(tmp_path) -> None:
    rows = [{"t_start": i * 0.5, "t_end": i * 0.5 + 5, "predicates": {
        "a": {"value": i % 7 > 3, "score": (i % 7) / 7, "threshold": 0.5},
        "b": {"value": False, "score": None if i == 5 else 0.1, "threshold": 0.6}},
        **({"fired": ["a"]} if i % 7 == 4 else {}), **({"flags": ["gap"]} if i == 9 else {})} for i in range(30)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "l.json").write_text(json.dumps({"events": [{"start": 4, "end": 7, "predicate": "a"}]}))
    out = tmp_path / "t.png"
    assert main(["plot", str(tmp_path / "t.jsonl"), "--labels", str(tmp_path / "l.json"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


@pytest.mark.parametrize("argv, message", [
    (["replay", "/nonexistent/bag", "--config", str(CONFIG)], "no such bag directory or audio file"),
    (["replay", str(HERE / "data" / "scene1_stamped_mcap"), "--config", "/nope.yaml"], "nope.yaml: cannot read"),
    (["score", "/nope.jsonl", str(HERE / "data" / "scene1.labels.json")], "nope.jsonl: cannot read timeline"),
    (["plot", str(HERE / "predicates.yaml"), "--out", "/tmp/x.png"], "not a replay JSON line"),
])
def test_errors_are_one_line_exit_2(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith(f"clap-predicates {argv[0]}: error: ")


def test_console_error_has_no_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "clap_ros.predicates_cli", "replay", "/nonexistent/bag",
                           "--config", str(CONFIG)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "clap-predicates replay: error: /nonexistent/bag: no such bag directory or audio file\n"
