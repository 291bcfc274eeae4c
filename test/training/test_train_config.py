"""The training config: YAML + overrides → validated dataclasses; every error names its field."""
from __future__ import annotations

import pytest

from clap_core.errors import ConfigError
from training.config import load_config

BASE = ["data.train=train.csv", "model.weights=default"]


def test_defaults_follow_the_paper_recipe():
    config = load_config(None, BASE)
    assert config.optim.lr == 1e-3
    assert config.optim.plateau_factor == 0.1
    assert config.model.audio_tower == "trainable" and config.model.text_tower == "trainable"
    assert config.augment.gain_db == (-6.0, 6.0)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: {train: a.csv}\nmodel: {config: {name: x}}\noptim: {lr: 0.01}\n")
    config = load_config(path, ["optim.lr=1e-4", "train.batch_size=8", "model.text_tower=frozen",
                                "augment.gain_db=[-3, 3]"])
    assert config.optim.lr == pytest.approx(1e-4)  # PyYAML alone would read 1e-4 as a string
    assert config.train.batch_size == 8
    assert config.model.text_tower == "frozen"
    assert config.model.config == {"name": "x"}
    assert config.augment.gain_db == (-3.0, 3.0)


@pytest.mark.parametrize("override, field", [
    ("optim.lrr=0.1", "optim.lrr"),
    ("optim.lr=fast", "optim.lr"),
    ("optim.lr=-1", "optim.lr"),
    ("optim.tower_lr=0", "optim.tower_lr"),
    ("train.batch_size=1", "train.batch_size"),
    ("train.batch_size=2.5", "train.batch_size"),
    ("model.audio_tower=half", "model.audio_tower"),
    ("augment.gain_db=[3, -3]", "augment.gain_db"),
    ("augment.mix_prob=2", "augment.mix_prob"),
    ("data.templates=['no placeholder']", "data.templates"),
    ("train.device=tpu", "train.device"),
    ("train.best_metric=zeroshot_acc", "train.best_metric"),
    ("bogus.x=1", "bogus"),
])
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError) as info:
        load_config(None, BASE + [override])
    assert str(info.value).startswith(field)


def test_missing_requirements_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="data.train: required"):
        load_config(None, ["model.weights=default"])
    with pytest.raises(ConfigError, match="model.weights .* or model.config"):
        load_config(None, ["data.train=a.csv"])
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="expected section.field=value"):
        load_config(None, BASE + ["optim.lr"])


@pytest.mark.parametrize("name", ["example_finetune.yaml", "example_scratch.yaml"])
def test_shipped_example_configs_validate(name):
    from pathlib import Path

    from clap_core.config import ModelConfig

    path = Path(__file__).resolve().parents[2] / "training" / "configs" / name
    config = load_config(path)
    if config.model.config is not None:
        ModelConfig.from_dict(config.model.config)  # the inline model config is valid too
