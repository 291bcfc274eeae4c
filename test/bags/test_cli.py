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

from clap_ros.bag_io import write_audio_bag
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


def test_replay_audio_file_and_human_output(tmp_path, capsys, tiny_model_dir) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000 * 6, np.float32), 16000)
    assert main(["replay", str(wav), "--config", str(CONFIG), "--weights", str(tiny_model_dir), "--hop", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "water_splash=" in lines[0]


def test_score_numbers(tmp_path, capsys) -> None:
    # windows 0-5, 1-6, ..., event 2-6 for "p": truth per window (overlap >= min(5, 4) / 2 = 2 s)
    rows, values = [], [False, True, True, True, False, False, True, False]
    for i, v in enumerate(values):
        rows.append({"t_start": float(i), "t_end": i + 5.0, "predicates": {"p": {"value": v, "score": 0.9 if v else 0.1}}})
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "l.json").write_text(json.dumps({"events": [{"start": 2.0, "end": 6.0, "predicate": "p"}]}))
    assert main(["score", str(tmp_path / "t.jsonl"), str(tmp_path / "l.json"), "--json"]) == 0
    (s,) = json.loads(capsys.readouterr().out)["predicates"]
    # overlaps with [2, 6]: 3, 4, 4, 3, 2, 1 s for windows starting 0..5 → true for 0..4, don't care
    # for 5, false for 6, 7.  values: tp = 1,2,3 ; fn = 0,4 ; fp = 6 ; tn = 7
    assert (s["precision"], s["recall"]) == (pytest.approx(3 / 4), pytest.approx(3 / 5))
    assert s["detected"] == 1 and s["mean_delay_s"] == pytest.approx(6.0 - 2.0)
    assert s["false_alarms"] == 1
    assert main(["score", str(tmp_path / "t.jsonl"), str(tmp_path / "l.json")]) == 0
    assert "macro F1" in capsys.readouterr().out


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
