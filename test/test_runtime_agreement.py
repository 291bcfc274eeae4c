"""Node, replay and calibrate load through one factory: the same weights and device give the same
runtime, whichever entry point asks (issue 11). Expected runtimes come from the weights' audio
tower kinds (CNN14 and YAMNet export to ONNX), not from the factory's own rule."""
from __future__ import annotations

import pytest

from clap_core.onnx_model import OnnxAudioModel
from clap_core.protocol import InferenceModel
from clap_ros.node_settings import NodeSettings
from clap_ros.predicate_node import load_node_model
from clap_ros.predicates_cli import build_parser, load_cli_model


def _three_loads(weights: str) -> list[InferenceModel]:
    node = load_node_model(NodeSettings(config="unused.yaml", weights=weights, compute_device="cpu"))
    replay = load_cli_model(build_parser().parse_args(
        ["replay", "a.bag", "--config", "p.yaml", "--weights", weights, "--device", "cpu"]))
    calibrate = load_cli_model(build_parser().parse_args(
        ["calibrate", "p.yaml", "--examples", "e.csv", "--out", "o.yaml", "--weights", weights]))
    return [node, replay, calibrate]


@pytest.mark.parametrize("which, expected", [("tiny", OnnxAudioModel), ("default", OnnxAudioModel)])
def test_node_replay_and_calibrate_get_the_same_runtime(which, expected, tiny_model_dir, default_weights) -> None:
    weights = str(tiny_model_dir) if which == "tiny" else default_weights
    models = _three_loads(weights)
    assert [type(m) for m in models] == [expected] * 3
    assert {m.runtime for m in models} == {"onnx"}
    assert {m.device for m in models} == {"cpu"}
    assert all(isinstance(m, InferenceModel) for m in models)
