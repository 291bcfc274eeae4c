"""The ONNX runtime (`load_model(..., runtime="onnx")`): the audio path exported to ONNX and run without torch gives msclap's numbers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly as scipy_resample_poly

from clap_core import ClapError, UnknownWeightsError
from clap_core.audio_io import load_audio, resample
from clap_core.clips import clip_windows
from clap_core.onnx_model import exportable, load_onnx_model
from references.msclap_reference import build_msclap_2022, msclap_wrapper_2022

CLIPS = ["HammerMetal/HammerMetal01.flac", "WaterSplash/WaterSplashing02.flac", "BicycleBell/bikeBell03.flac"]
RATE_BOUND = 2e-5  # max |diff| of 16-kHz-input embeddings (measured 2.9e-6; see the test)
PROMPTS = ["This is a sound of hammer metal.", "a dog barking", "someone pours liquid into a glass"]

# Runs in a fresh Python: what a node does with the model, and whether torch ever got imported.
CHILD = """
import json, sys
import numpy as np
from clap_core import ClapError, load_model
weights, out = sys.argv[1], sys.argv[2]
windows = np.load(out + "/windows.npy")
model = load_model(weights, runtime="onnx")
nan = windows[:1].copy(); nan[0, 100] = np.nan
try:
    model.embed_audio(nan, 44100)
    nan_error = ""
except ClapError as exc:
    nan_error = str(exc)
np.savez(out + "/result.npz", at_44k=model.embed_audio(windows, 44100),
         at_16k=model.embed_audio(np.load(out + "/windows_16k.npy"), 16000),
         text=model.embed_text(json.loads(sys.argv[3])))
print(json.dumps({"torch_imported": "torch" in sys.modules, "transformers_imported": "transformers" in sys.modules,
                  "nan_error": nan_error, "sample_rate": model.sample_rate, "template": model.config.template}))
"""


@pytest.fixture(scope="module")
def windows(sounds45) -> np.ndarray:
    return np.stack([clip_windows(*load_audio(sounds45 / rel), 5.0)[0] for rel in CLIPS]).astype(np.float32)


@pytest.fixture(scope="module")
def run(msclap_checkpoint, windows, tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("onnx")
    np.save(out / "windows.npy", windows)
    np.save(out / "windows_16k.npy", resample(windows, 44100, 16000))
    done = subprocess.run([sys.executable, "-c", CHILD, str(msclap_checkpoint), str(out), json.dumps(PROMPTS)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report, dict(np.load(out / "result.npz"))


@pytest.fixture(scope="module")
def reference():
    return build_msclap_2022(seed=0)


def _assert_parity(ours: np.ndarray, expected: torch.Tensor) -> None:
    """The project's parity bound with msclap (issue: cosine ≥ 0.99999, max |diff| ≤ 1e-3)."""
    expected = expected.numpy()
    cosine = (ours * expected).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(expected, axis=-1)
    assert cosine.min() >= 0.99999, cosine
    assert np.abs(ours - expected).max() <= 1e-3


def test_never_imports_torch_or_the_text_encoder(run) -> None:
    report, _ = run
    assert report["torch_imported"] is False
    assert report["transformers_imported"] is False
    assert report["sample_rate"] == 44100 and "{}" in report["template"]


def test_audio_embeddings_match_msclap(run, reference, windows) -> None:
    with torch.no_grad():
        expected = reference.audio_encoder(torch.from_numpy(windows))[0]
    _assert_parity(run[1]["at_44k"], expected)


def test_other_rates_are_resampled_first(run, reference, windows) -> None:
    """16-kHz input: msclap's encoder on SciPy's own 16 → 44.1 kHz resampling (not the project's).

    Random-weight CNN14 barely reacts to its input, so the bound is set from what is reached, not
    from the parity bound: measured 2.9e-6 (2.3e-6 at 44.1 kHz, ONNX vs torch). A linear-interpolation
    resampler moves the embedding by 8.4e-4, no resampling (16-kHz samples read as 44.1 kHz) by 6e-3,
    the original 44.1-kHz windows (no 8-kHz low-pass) by 1.1e-3 — asserted below to stay far outside.
    """
    at_16k = resample(windows, 44100, 16000).astype(np.float64)  # what the child was given
    upsampled = scipy_resample_poly(at_16k, 44100, 16000, axis=-1).astype(np.float32)
    with torch.no_grad():
        expected = reference.audio_encoder(torch.from_numpy(upsampled))[0].numpy()
        original = reference.audio_encoder(torch.from_numpy(windows))[0].numpy()
    assert np.abs(run[1]["at_16k"] - expected).max() <= RATE_BOUND
    assert np.abs(original - expected).max() > 20 * RATE_BOUND


def test_text_embeddings_match_msclap(run, msclap_checkpoint) -> None:
    """The ONNX model's text child against msclap's own tokenisation and caption encoder."""
    expected = msclap_wrapper_2022(msclap_checkpoint).get_text_embeddings(PROMPTS)
    _assert_parity(run[1]["text"], expected)


def test_nan_audio_is_a_clear_error(run) -> None:
    assert "NaN or infinite" in run[0]["nan_error"]


DEFAULT_CHILD = """
import json, sys
import numpy as np
from clap_core import load_model
out = sys.argv[1]
model = load_model("default")  # runtime auto: the YAMNet tower exports
whole, parts, spans = model.embed_audio_parts(np.load(out + "/windows.npy"), 44100, 1.0, 0.5)
np.savez(out + "/default.npz", whole=whole, parts=parts, spans=np.asarray(spans))
print(json.dumps({"runtime": model.runtime, "torch": "torch" in sys.modules, "onnx": "onnx" in sys.modules,
                  "transformers": "transformers" in sys.modules}))
"""


def test_default_model_runs_without_torch_and_hears_as_the_torch_runtime(windows, default_torch_model,
                                                                         tmp_path) -> None:
    """The default model in a fresh process: ONNX Runtime only (no torch, no `onnx` graph rewriting,
    no text encoder), and the same whole-window and part embeddings as the torch module in this
    one (the YAMNet runner is shared code; the projection graph is the exported part: measured
    max |diff| 1.2e-7)."""
    np.save(tmp_path / "windows.npy", windows)
    done = subprocess.run([sys.executable, "-c", DEFAULT_CHILD, str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"runtime": "onnx", "torch": False, "onnx": False, "transformers": False}
    got = np.load(tmp_path / "default.npz")
    whole, parts, spans = default_torch_model.embed_audio_parts(windows, 44100, 1.0, 0.5)
    assert np.abs(got["whole"] - whole.numpy()).max() <= 1e-5
    assert got["parts"].shape == tuple(parts.shape) and np.abs(got["parts"] - parts.numpy()).max() <= 1e-5
    np.testing.assert_allclose(got["spans"], np.asarray(spans))


def test_a_tower_that_does_not_export_says_what_to_use(tmp_path: Path) -> None:
    """A project folder whose audio tower has no export (HTS-AT) is refused before any child runs."""
    config = json.loads((Path(__file__).parents[2] / "clap_core/weights/default/config.json").read_text())
    config["audio"]["kind"] = "htsat"
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert exportable(tmp_path) is False
    with pytest.raises(ClapError, match="not one that exports.*load_model"):
        load_onnx_model(tmp_path)


def test_unknown_weights_name() -> None:
    with pytest.raises(UnknownWeightsError, match="no_such_weights"):
        load_onnx_model("no_such_weights")


def test_corrupt_checkpoint_is_reported_from_the_child_by_file_name(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"this is not a checkpoint" * 100)
    assert exportable(broken)  # only the load can tell
    with pytest.raises(ClapError, match="broken.pth"):
        load_onnx_model(broken)
