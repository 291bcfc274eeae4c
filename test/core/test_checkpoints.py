"""Checkpoint loading: safe, strict about keys, and lossless both ways between formats."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from clap_core import CheckpointError, UnknownWeightsError, load_torch_model
from clap_core.checkpoints import read_torch_checkpoint, save_checkpoint
from clap_core.msclap_2022 import save_msclap_checkpoint
from references.msclap_reference import build_msclap_2022


class _RunsCode:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "code-ran"
    bad = tmp_path / "evil.pth"
    with bad.open("wb") as handle:
        pickle.dump({"model": {"x": _RunsCode(marker)}}, handle)
    with pytest.raises(CheckpointError, match="refused"):
        load_torch_model(bad)
    assert not marker.exists()


def test_torch_save_with_objects_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    bad = tmp_path / "evil2.pth"
    torch.save({"model": {"x": _RunsCode(marker)}}, str(bad))
    with pytest.raises(CheckpointError, match="refused"):
        read_torch_checkpoint(bad)
    assert not marker.exists()


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(str(path), map_location="cpu", weights_only=True)["model"]


def test_missing_and_unexpected_keys_are_listed(msclap_checkpoint, tmp_path):
    state = _state(msclap_checkpoint)
    state.pop("audio_encoder.base.conv_block3.conv2.weight")
    state.pop("caption_encoder.projection.linear1.weight")
    state["audio_encoder.base.extra_head.weight"] = torch.zeros(2)
    broken = tmp_path / "broken.pth"
    torch.save({"model": state}, str(broken))
    with pytest.raises(CheckpointError) as info:
        load_torch_model(broken)
    message = str(info.value)
    assert "audio_encoder.base.extra_head.weight" in message
    state.pop("audio_encoder.base.extra_head.weight")
    torch.save({"model": state}, str(broken))
    with pytest.raises(CheckpointError) as info:
        load_torch_model(broken)
    message = str(info.value)
    assert "audio_encoder.base.conv_block3.conv2.weight" in message
    assert "caption_encoder.projection.linear1.weight" in message
    assert "2 missing" in message


def test_wrong_shape_is_an_error(msclap_checkpoint, tmp_path):
    state = _state(msclap_checkpoint)
    state["audio_encoder.projection.linear2.weight"] = torch.zeros(3, 3)
    broken = tmp_path / "shape.pth"
    torch.save({"model": state}, str(broken))
    with pytest.raises(CheckpointError, match="shapes"):
        load_torch_model(broken)


def test_tampered_stft_kernels_are_detected(msclap_checkpoint, tmp_path):
    state = _state(msclap_checkpoint)
    state["audio_encoder.base.spectrogram_extractor.stft.conv_real.weight"] *= 1.5
    broken = tmp_path / "stft.pth"
    torch.save({"model": state}, str(broken))
    with pytest.raises(CheckpointError, match="DFT"):
        load_torch_model(broken)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage",
                                     b"this is not a checkpoint" * 100])  # the last one: IndexError in torch
def test_corrupt_files_give_a_clear_error(tmp_path, content):
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt.pth"):
        load_torch_model(bad)


def test_unknown_name_and_missing_official_weights(monkeypatch, tmp_path):
    with pytest.raises(UnknownWeightsError, match="no-such-weights"):
        load_torch_model("no-such-weights")
    monkeypatch.setenv("CLAP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match="microsoft/msclap"):
        load_torch_model("msclap-2022")


def test_registered_name_finds_downloaded_weights(monkeypatch, msclap_checkpoint):
    monkeypatch.setenv("CLAP_WEIGHTS_DIR", str(msclap_checkpoint.parent))
    model = load_torch_model("msclap-2022")
    assert model.config.name == "msclap-2022"


def _probe(model) -> tuple[torch.Tensor, torch.Tensor]:
    audio = torch.sin(torch.linspace(0, 3000, model.sample_rate * 2))[None] * 0.3
    return model.embed_audio(audio, model.sample_rate), model.embed_text(["a hammer hits metal", "rain"])


def test_msclap_to_project_format_and_back(msclap_checkpoint, tmp_path):
    original = load_torch_model(msclap_checkpoint)
    folder = save_checkpoint(original, tmp_path / "converted")
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    converted = load_torch_model(folder)
    for a, b in zip(_probe(original), _probe(converted)):
        assert torch.equal(a, b)
    # ...and back into Microsoft's layout, which their own model loads strictly.
    exported = save_msclap_checkpoint(converted, tmp_path / "exported.pth")
    reference = build_msclap_2022(seed=123)
    reference.load_state_dict(_state(exported), strict=True)
    assert torch.equal(reference.logit_scale, original.logit_scale)
    assert torch.equal(_state(exported)["audio_encoder.base.fc1.weight"], _state(msclap_checkpoint)["audio_encoder.base.fc1.weight"])


def test_project_format_errors(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes()[:100])
    (broken / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(CheckpointError, match="safetensors"):
        load_torch_model(broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_torch_model(broken)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["audio"]["bogus_field"] = 1
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="audio.bogus_field"):
        load_torch_model(broken)


def test_release_and_reload_text_tower(msclap_checkpoint):
    model = load_torch_model(msclap_checkpoint)
    before = model.embed_text(["glass breaking"])
    assert model.release_text_tower()
    assert model.text_tower is None
    after = model.embed_text(["glass breaking"])
    assert torch.equal(before, after)


def test_compact_for_inference_keeps_outputs_and_refuses_training(msclap_checkpoint, tmp_path):
    from clap_core import ClapError

    model = load_torch_model(msclap_checkpoint)
    audio = torch.sin(torch.linspace(0, 3000, 44100 * 5))[None] * 0.3
    text = model.embed_text(["a hammer hits metal"])
    before = model.embed_audio(audio, 44100)
    dense = sum(p.numel() for p in model.audio_tower.parameters())
    model.compact_for_inference()
    assert sum(p.numel() for p in model.audio_tower.parameters()) < dense / 10
    assert torch.equal(model.embed_audio(audio, 44100), before)
    assert torch.equal(model.embed_text(["a hammer hits metal"]), text)  # text tower reloads
    with pytest.raises(ClapError, match="compacted"):
        model.train()
    with pytest.raises(CheckpointError, match="compacted"):
        save_checkpoint(model, tmp_path / "nope")
