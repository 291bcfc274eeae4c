"""MS-CLAP 2023 and LAION-CLAP weights in every entry point the 2022 weights run in: `clap-classify`,
`clap-eval zeroshot`, `clap-predicates replay` and `calibrate`, and `training/train.py` fine-tuning.

Each CLI runs in-process on real sounds45 recordings with the weights found by registered name
(CLAP_WEIGHTS_DIR); its answer is checked against the torch module (`load_torch_model`) driven
directly: soundfile + SciPy's resampler, the clip tiled to the model's length by hand, cosine of
unit embeddings with the model's own template. The checkpoints are the session's random-weight
`ms23` (real size) and `laion` (small `ClapConfig`) fixtures of test/conftest.py.
"""
from __future__ import annotations

import csv
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
import yaml
from scipy.signal import resample_poly

from clap_core import load_torch_model

pytestmark = pytest.mark.slow

FAMILIES = {"msclap-2023": "ms23", "laion-clap-htsat-unfused": "laion"}
CLASSES = ["BicycleBell", "Chainsaw", "CrumplingPaper", "HammerMetal", "ClankingDishes"]
MAX_S = 7.0  # recordings shorter than both models' clips: one window each, tiled


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request) -> tuple[str, Path, torch.nn.Module]:
    """(registered name, weights folder, torch module loaded by path)."""
    built = request.getfixturevalue(FAMILIES[request.param])
    if request.param == "msclap-2023":
        path = built[2]
        return request.param, path.parent, load_torch_model(path)
    return request.param, built[2], load_torch_model(built[2] / "laion--clap-htsat-unfused")


@pytest.fixture
def weights_env(family, monkeypatch) -> str:
    monkeypatch.setenv("CLAP_WEIGHTS_DIR", str(family[1]))
    return family[0]


@pytest.fixture(scope="module")
def recordings(sounds45_rows, sounds45) -> list[tuple[Path, str]]:
    """(path, label): the first recording under MAX_S of three classes."""
    out = []
    for cls in CLASSES[:3]:
        row = next(r for r in sounds45_rows if r["class"] == cls and sf.info(str(sounds45 / r["path"])).duration < MAX_S)
        out.append((sounds45 / row["path"], row["label"]))
    return out


def _labels(sounds45_rows) -> list[str]:
    return [next(r["label"] for r in sounds45_rows if r["class"] == cls) for cls in CLASSES]


def _direct_probabilities(model: torch.nn.Module, path: Path, labels: list[str]) -> np.ndarray:
    """Zero-shot softmax straight from the torch module (the expectation the CLIs are held to)."""
    wave, rate = sf.read(str(path), dtype="float64")
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    step = Fraction(model.sample_rate, rate)
    wave = resample_poly(wave, step.numerator, step.denominator) if step != 1 else wave
    length = int(round(model.clip_seconds * model.sample_rate))
    wave = np.resize(wave, length).astype(np.float32)  # np.resize repeats the clip to the length
    with torch.no_grad():
        audio = F.normalize(model.embed_audio(torch.from_numpy(wave)[None], model.sample_rate), dim=-1)
        text = F.normalize(model.embed_text([model.config.template.format(x) for x in labels]), dim=-1)
        scale = min(float(model.logit_scale.exp()), model.config.logit_scale_max)
        return torch.softmax(scale * (audio @ text.T)[0].double(), 0).numpy()


def test_classify_matches_the_torch_model(family, weights_env, recordings, sounds45_rows, capsys):
    from clap_core.cli.classify import main

    _, _, model = family
    labels = _labels(sounds45_rows)
    assert main(["--weights", weights_env, "--labels", ",".join(labels), "--json",
                 *[str(p) for p, _ in recordings]]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p, _ in recordings]
    for line, (path, _) in zip(lines, recordings):
        want = _direct_probabilities(model, path, labels)
        assert line["template"] == model.config.template
        assert line["label"] == labels[int(want.argmax())]
        assert [line["probabilities"][x] for x in labels] == pytest.approx(want, abs=1e-4)
    spread = [max(line["probabilities"].values()) - min(line["probabilities"].values()) for line in lines]
    assert max(spread) > 1e-3, spread  # the comparison means something: labels are told apart


def test_eval_zeroshot_matches_the_torch_model(family, weights_env, recordings, sounds45_rows, tmp_path, capsys):
    from clap_core.cli.evaluate import main

    _, _, model = family
    labels = _labels(sounds45_rows)
    manifest = tmp_path / "zs.csv"
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows([("path", "label"), *[(str(p), label) for p, label in recordings]])
    assert main(["zeroshot", "--manifest", str(manifest), "--weights", weights_env, "--labels", ",".join(labels),
                 "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    hits = {label: float(labels[int(_direct_probabilities(model, p, labels).argmax())] == label)
            for p, label in recordings}
    assert result["per_class"] == hits and result["n"] == len(recordings) and result["n_classes"] == len(labels)
    assert result["accuracy"] == pytest.approx(sum(hits.values()) / len(hits))


def _write_sequence(path: Path, recordings: list[tuple[Path, str]], seconds: float) -> Path:
    """Real recordings one after the other (at their own rate), cut to `seconds`."""
    waves = [sf.read(str(p), dtype="float32") for p, _ in recordings]
    rate = waves[0][1]
    wave = np.concatenate([w if w.ndim == 1 else w.mean(axis=1) for w, _ in waves])
    sf.write(str(path), np.resize(wave, int(seconds * rate)), rate)
    return path


def test_replay_windows_have_the_model_clip_length(family, weights_env, recordings, tmp_path, capsys):
    from clap_ros.predicates_cli import main

    _, _, model = family
    audio = _write_sequence(tmp_path / "seq.wav", recordings, model.clip_seconds + 4.0)
    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump({"predicates": {"bell": {"prompt": "a bicycle bell"},
                                                     "saw": {"prompt": "a chainsaw"}}}))
    assert main(["replay", str(audio), "--config", str(config), "--weights", weights_env, "--hop", "2",
                 "--json", "--quiet"]) == 0
    windows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(windows) >= 3
    for w in windows:
        assert w["t_end"] - w["t_start"] == pytest.approx(model.clip_seconds, abs=1e-3)
        assert all(p["score"] is not None and math.isfinite(p["score"]) for p in w["predicates"].values())


def test_calibrate_with_2023_weights_writes_prototypes_of_that_model(ms23, sounds45_rows, sounds45, tmp_path,
                                                                     monkeypatch, capsys):
    from clap_ros.predicates_cli import main

    monkeypatch.setenv("CLAP_WEIGHTS_DIR", str(ms23[2].parent))
    rows = ["path,predicate,label"]
    bells = [r for r in sounds45_rows if r["class"] == "BicycleBell"][:2]
    others = [next(r for r in sounds45_rows if r["class"] == cls) for cls in CLASSES[1:4]]
    rows += [f"{sounds45 / r['path']},bell,pos" for r in bells] + [f"{sounds45 / r['path']},bell,neg" for r in others]
    examples = tmp_path / "examples.csv"
    examples.write_text("\n".join(rows) + "\n")
    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump({"predicates": {"bell": {"prompt": "a bicycle bell"},
                                                     "saw": {"prompt": "a chainsaw"}}}))
    out = tmp_path / "calibrated.yaml"
    assert main(["calibrate", str(config), "--examples", str(examples), "--out", str(out), "--weights", "msclap-2023",
                 "--snr-db", "20", "--hop", "2"]) == 0
    report = capsys.readouterr().out
    assert report.startswith("bell:"), report
    written = yaml.safe_load(out.read_text())["predicates"]
    assert written["bell"]["prototypes"]["model"] == "msclap-2023"
    assert "prototypes" not in written["saw"]
