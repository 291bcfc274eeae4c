"""Predicates YAML validation: every field's error names the predicate and the field."""
from __future__ import annotations

from pathlib import Path

import pytest

from clap_core.errors import ConfigError
from clap_core.predicates import load_predicate_config, parse_predicate_config, write_predicate_config
from clap_core.predicates.config import DEFAULT_BACKGROUND


def _pred(**fields):
    return {"predicates": {"pour_done": {"prompt": "liquid being poured", **fields}}}


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text('predicates:\n  pour_done:\n    prompt: "liquid being poured into a container"\n')
    cfg = load_predicate_config(f)
    p = cfg.get("pour_done")
    assert p.prompts == ("liquid being poured into a container",)
    assert (p.threshold, p.hysteresis, p.kind, p.min_duration_s) == (0.5, 0.1, "state", 0.0)
    assert cfg.background == DEFAULT_BACKGROUND and cfg.source == str(f)


def test_full_predicate_and_defaults_block() -> None:
    cfg = parse_predicate_config({
        "defaults": {"threshold": 0.6, "kind": "event"},
        "background": ["silence"],
        "template": "A recording of {}.",
        "predicates": {
            "contact_onset": {"prompts": ["a hammer hitting a nail", "metal clank"],
                              "negatives": ["speech"], "refractory_s": 1.5, "hysteresis": 0.2},
            "splash": "water splashing",
        }})
    c = cfg.get("contact_onset")
    assert c.kind == "event" and c.threshold == 0.6 and c.refractory_s == 1.5
    assert c.threshold_off == pytest.approx(0.4) and c.negatives == ("speech",)
    assert cfg.get("splash").prompts == ("water splashing",) and cfg.get("splash").kind == "event"
    assert cfg.template == "A recording of {}." and cfg.background == ("silence",)


@pytest.mark.parametrize("fields, message", [
    ({"threshold": 2.0}, "predicates.pour_done.threshold: must be in [0, 1], got 2.0"),
    ({"threshold": "high"}, "predicates.pour_done.threshold: must be a number"),
    ({"hysteresis": -0.1}, "predicates.pour_done.hysteresis: must be in [0, 1]"),
    ({"min_duration_s": -1}, "predicates.pour_done.min_duration_s: must be in [0, 3600]"),
    ({"refractory_s": True}, "predicates.pour_done.refractory_s: must be a number"),
    ({"kind": "sometimes"}, "predicates.pour_done.kind: must be one of state, event"),
    ({"negatives": [""]}, "predicates.pour_done.negatives[0]: must be a non-empty string"),
    ({"negatives": 3}, "predicates.pour_done.negatives: must be a string or a list of strings"),
    ({"prompts": ["a"]}, "predicates.pour_done: give either 'prompt' or 'prompts', not both"),
    ({"treshold": 0.5}, "predicates.pour_done.treshold: unknown field"),
    ({"prototypes": {"negative": [1.0]}}, "predicates.pour_done.prototypes.positive: missing"),
    ({"prototypes": {"positive": [1.0, "x"]}}, "predicates.pour_done.prototypes.positive[1]: must be a finite"),
    ({"prototypes": {"positive": [1.0], "negative": [1.0, 2.0]}},
     "predicates.pour_done.prototypes.negative: length 2 differs"),
    ({"prototypes": {"positive": [1.0], "weight": 3}}, "predicates.pour_done.prototypes.weight: must be in [0, 1]"),
])
def test_field_errors_name_predicate_and_field(fields, message) -> None:
    with pytest.raises(ConfigError) as err:
        parse_predicate_config(_pred(**fields))
    assert message in str(err.value)


@pytest.mark.parametrize("data, message", [
    ([], "top level: expected a mapping"),
    ({"predicates": {}}, "predicates: must be a non-empty mapping"),
    ({"predicates": {"p": {}}}, "predicates.p.prompt: missing"),
    ({"predicates": {"p": {"prompts": []}}}, "predicates.p.prompts: must not be empty"),
    ({"predicates": {"bad-name": {"prompt": "x"}}}, "predicates.bad-name: name must start with a letter"),
    ({"predicates": {"p": 5}}, "predicates.p: must be a mapping"),
    ({"predicates": {"p": "x"}, "extra": 1}, "extra: unknown field"),
    ({"predicates": {"p": "x"}, "template": "no slot"}, "template: must be a string with exactly one '{}'"),
    ({"predicates": {"p": "x"}, "defaults": {"prompt": "y"}}, "defaults.prompt: unknown field"),
    ({"predicates": {"p": "x"}, "defaults": {"threshold": 7}}, "predicates.p.threshold: must be in [0, 1], got 7"),
])
def test_structure_errors(data, message) -> None:
    with pytest.raises(ConfigError) as err:
        parse_predicate_config(data)
    assert message in str(err.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml: cannot read"):
        load_predicate_config(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("predicates: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line \d"):
        load_predicate_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("predicates:\n  p:\n    prompt: x\n    threshold: 2.0\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: predicates.p.threshold: must be in \[0, 1\], got 2.0"):
        load_predicate_config(wrong)


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    cfg = parse_predicate_config({"predicates": {
        "a": {"prompts": ["x", "y"], "kind": "event", "threshold": 0.42,
              "prototypes": {"positive": [0.1, 0.2], "negative": [0.3, 0.4], "weight": 0.6, "model": "m"}},
        "b": {"prompt": "z", "negatives": ["w"], "min_duration_s": 1.0}}})
    out = tmp_path / "out.yaml"
    write_predicate_config(cfg, out)
    again = load_predicate_config(out)
    assert again.predicates == cfg.predicates


def test_a_file_cut_inside_a_character_is_a_config_error(tmp_path: Path) -> None:
    """A predicates file caught half-written can end inside a multi-byte UTF-8 character; that raised
    UnicodeDecodeError, which the node's reload handler does not expect (it took the node down)."""
    cut = tmp_path / "cut.yaml"
    cut.write_bytes("predicates:\n  p:\n    prompt: a café\n".encode()[:-2])
    with pytest.raises(ConfigError, match=r"cut.yaml: not UTF-8 text at byte 34 \(cut off while being written\?\)"):
        load_predicate_config(cut)
