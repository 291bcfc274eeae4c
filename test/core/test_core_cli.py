"""The installed console scripts, run as a user would: real processes, real files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


BIN = Path(sys.executable).parent


def read_json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def _cli(name: str, *args: str) -> subprocess.CompletedProcess:
    exe = BIN / name
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (run scripts/setup.sh)")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture()
def small_manifest(tmp_path, sounds45, sounds45_rows) -> Path:
    """Two clips each of three classes, one row pointing at a corrupt file, extra columns kept."""
    rows = [r for r in sounds45_rows if r["class"] in ("HammerMetal", "WaterSplash", "BicycleBell")]
    picked = [r for cls in ("HammerMetal", "WaterSplash", "BicycleBell")
              for r in [x for x in rows if x["class"] == cls][:2]]
    (tmp_path / "broken.flac").write_bytes(b"fLaC not really")
    lines = ["path,label,extra"] + [f"{sounds45 / r['path']},{r['label']},x" for r in picked]
    lines.append("broken.flac,hammer metal,x")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_eval_zeroshot_json_and_skips_bad_file(tiny_model_dir, small_manifest):
    result = _cli("clap-eval", "zeroshot", "--manifest", small_manifest, "--weights", tiny_model_dir, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 6 and set(summary["per_class"]) == {"hammer metal", "water splash", "bicycle bell"}
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["template"] == "This is a sound of {}."
    assert any("broken.flac" in s for s in summary["skipped"])
    assert "broken.flac" in result.stderr


def test_eval_results_do_not_depend_on_the_batch_size(tiny_model_dir, small_manifest):
    runs = [_cli("clap-eval", "zeroshot", "--manifest", small_manifest, "--weights", tiny_model_dir, "--json",
                 *extra) for extra in (("--batch-size", "1"), ("--batch-size", "64", "--quiet"))]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    one, many = (json.loads(r.stdout.strip().splitlines()[-1]) for r in runs)
    assert one == many and one["n"] == 6
    assert all("zero-shot:" not in r.stderr for r in runs)  # no progress bar: stderr is not a terminal
    bad = _cli("clap-eval", "zeroshot", "--manifest", small_manifest, "--batch-size", "0")
    assert bad.returncode == 2 and "--batch-size: must be a positive number" in bad.stderr


# (file, manifest label): two rows deliberately mislabelled. The default model puts >= 0.98 of its
# probability on each file's real class (measured with clap-classify over these three labels), so
# the hits are known from the folder names alone: 5 of 7 readable clips.
LABELLED = [("HammerMetal/HammerMetal01.flac", "hammer metal"), ("HammerMetal/HammerMetal02.flac", "hammer metal"),
            ("HammerMetal/HammerMetal03.flac", "hammer metal"), ("WaterSplash/WaterSplashing01.flac", "hammer metal"),
            ("WaterSplash/WaterSplashing02.flac", "water splash"), ("BicycleBell/bikeBell01.flac", "bicycle bell"),
            ("BicycleBell/bikeBell02.flac", "water splash")]


def test_eval_accuracy_is_the_share_of_hits(default_weights, sounds45, tmp_path):
    """Accuracy over clips (micro), per-class accuracy, skipped files not counted — worked out by hand:
    hammer metal 3/4 (one splash labelled hammer), water splash 1/2 (one bell labelled splash),
    bicycle bell 1/1; overall 5/7 (the per-class mean would be 3/4, counting the broken file 5/8)."""
    (tmp_path / "broken.flac").write_bytes(b"fLaC not really")
    lines = ["path,label"] + [f"{sounds45 / path},{label}" for path, label in LABELLED] + ["broken.flac,hammer metal"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(lines) + "\n")
    result = _cli("clap-eval", "zeroshot", "--manifest", manifest, "--weights", default_weights, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 7 and summary["n_classes"] == 3
    assert summary["accuracy"] == pytest.approx(5 / 7, abs=1e-12)
    assert summary["per_class"] == pytest.approx({"hammer metal": 3 / 4, "water splash": 1 / 2, "bicycle bell": 1.0})


def test_eval_on_sounds45_with_msclap_layout_weights(msclap_checkpoint, sounds45):
    """The issue's check: the whole labels.csv with random MS-CLAP-layout weights from a file."""
    result = _cli("clap-eval", "zeroshot", "--manifest", sounds45 / "labels.csv", "--weights",
                  msclap_checkpoint, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 133 and summary["n_classes"] == 33 and not summary["skipped"]


def test_eval_labels_file_and_root(tiny_model_dir, tmp_path, sounds45):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nHammerMetal/HammerMetal01.flac,hammer metal\n")
    labels = tmp_path / "labels.txt"
    labels.write_text("# classes\nhammer metal\nwater splash\n\n")
    result = _cli("clap-eval", "zeroshot", "--manifest", manifest, "--root", sounds45, "--labels-file", labels,
                  "--weights", tiny_model_dir, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["n_classes"] == 2


@pytest.mark.parametrize("content,needle", [
    ("path,label\n", "lists no clips"),
    ("file,label\nx.wav,a\n", "no 'path' column"),
    ("path,category\nx.wav,a\n", "no 'label' column"),
])
def test_eval_bad_manifests(tmp_path, content, needle):
    manifest = tmp_path / "bad.csv"
    manifest.write_text(content)
    result = _cli("clap-eval", "zeroshot", "--manifest", manifest, "--weights", "default")
    assert result.returncode != 0
    assert needle in result.stderr and "bad.csv" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_eval_missing_manifest_and_unknown_weights(tmp_path, small_manifest):
    result = _cli("clap-eval", "zeroshot", "--manifest", tmp_path / "nope.csv")
    assert result.returncode != 0 and "nope.csv" in result.stderr and "Traceback" not in result.stderr
    result = _cli("clap-eval", "zeroshot", "--manifest", small_manifest, "--weights", "no-such-model")
    assert result.returncode != 0 and "no-such-model" in result.stderr and "Traceback" not in result.stderr


def test_classify_files(tiny_model_dir, sounds45, tmp_path):
    missing = tmp_path / "missing.wav"
    good = sounds45 / "HammerMetal" / "HammerMetal01.flac"
    result = _cli("clap-classify", good, missing, "--labels", "hammer metal, water splash,bicycle bell",
                  "--weights", tiny_model_dir, "--json")
    assert result.returncode == 1  # one file failed, the other was still classified
    records = read_json_lines(result.stdout)
    assert records[0]["path"] == str(good) and set(records[0]["probabilities"]) == {
        "hammer metal", "water splash", "bicycle bell"}
    assert abs(sum(records[0]["probabilities"].values()) - 1) < 1e-4
    assert "missing.wav" in records[1]["error"]
    plain = _cli("clap-classify", good, "--labels", "a,b", "--weights", tiny_model_dir)
    assert plain.returncode == 0 and plain.stdout.startswith(str(good))


def test_classify_needs_labels_and_valid_template(tiny_model_dir, sounds45):
    good = sounds45 / "HammerMetal" / "HammerMetal01.flac"
    result = _cli("clap-classify", good, "--weights", tiny_model_dir)
    assert result.returncode == 2 and "--labels" in result.stderr
    result = _cli("clap-classify", good, "--labels", "a,b", "--template", "no slot", "--weights", tiny_model_dir)
    assert result.returncode == 2 and "--template" in result.stderr


def test_default_template_is_the_model_own_and_eval_takes_labels(tiny_model_dir, small_manifest, tmp_path):
    """Without --template both CLIs use the template the weights' config names (was: always the
    2022 paper's); clap-eval's --labels is a label list (was: taken as --labels-file's abbreviation)."""
    import shutil

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config["template"] = "the noise of {} here"
    (model / "config.json").write_text(json.dumps(config))
    good = small_manifest.read_text().splitlines()[1].split(",")[0]
    (record,) = read_json_lines(_cli("clap-classify", good, "--labels", "a,b", "--weights", model, "--json").stdout)
    assert record["template"] == "the noise of {} here"
    result = _cli("clap-eval", "zeroshot", "--manifest", small_manifest, "--weights", model, "--json",
                  "--labels", "hammer metal,water splash,bicycle bell,rain")
    summary = json.loads(result.stdout)
    assert summary["template"] == "the noise of {} here" and summary["n_classes"] == 4, result.stderr
