"""A torch-free model for long-running inference: the audio path exported to ONNX, run by ONNX Runtime.

Why: once its prompts are embedded, a robot's node only turns audio into embeddings, yet a process
that imports torch holds ≈ 220 MB of torch's own code and tables before a single weight is loaded.
`load_onnx_model` has a short-lived child process (`python -m clap_core.onnx_model`) load the
checkpoint with torch and export the whole audio path — log-Mel front end, tower, projection — to
ONNX; this process then only runs that graph with ONNX Runtime, and `embed_text` hands prompts to
another child. Neither torch nor the text encoder is ever imported here. Numbers: `docs/core.md`.

Only towers built from torch operations export (CNN14, the MS-CLAP 2022 tower). The default
model's YAMNet tower is an ONNX Runtime graph already and is used through `load_model`.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .audio_io import resample, waveform_batch
from .child_process import run_child, serve
from .config import ModelConfig
from .errors import ClapError
from .parts import part_spans
from .precision import check_onnx_precision

EXPORTABLE_AUDIO_TOWERS = ("cnn14",)
TIMEOUT_S = 900.0  # loading and exporting CNN14 takes ~10–20 s on 2 cores; a hung child must not hang us
_GRAPH, _META = "audio.onnx", "model.json"


class OnnxAudioModel:
    """What inference needs from a CLAP model, without torch: `embed_audio`, `embed_text`, and the
    model's sample rate, config (template, name) and logit scale. Results equal `ClapModel`'s
    within float32 rounding (tested: cosine ≥ 0.99999)."""

    def __init__(self, weights: str, config: ModelConfig, logit_scale: float, session: Any) -> None:
        self.weights = weights
        self.config = config
        self.logit_scale = float(logit_scale)  # log of the scale, like ClapModel's parameter
        self._session = session

    @property
    def sample_rate(self) -> int:
        return int(self.config.audio.sample_rate)

    @property
    def embed_dim(self) -> int:
        return int(self.config.embed_dim)

    @property
    def clip_seconds(self) -> float:
        return float(self.config.clip_seconds)

    def embed_audio(self, waveform: Any, sample_rate: int) -> np.ndarray:
        """`[batch, samples]` (or `[samples]`) mono → `[batch, d]` joint-space embeddings, before L2
        norm; resampled first when `sample_rate` differs from the model's."""
        batch = waveform_batch(np.asarray(waveform, dtype=np.float32))
        if int(sample_rate) != self.sample_rate:
            batch = resample(batch, int(sample_rate), self.sample_rate)
        return self._run(batch)

    def embed_audio_parts(self, waveform: Any, sample_rate: int, part_s: float,
                          part_hop_s: float) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
        """`embed_audio` plus parts, as `ClapModel.embed_audio_parts`. The exported graph has no
        parts output, so each part is cut from the waveform and run through it: about (1 + parts ×
        part/window) of the whole-window cost (docs/predicates.md). The parts are shorter clips
        rather than stretches of one conv pass: same spans, close but not equal embeddings."""
        batch = waveform_batch(np.asarray(waveform, dtype=np.float32))
        if int(sample_rate) != self.sample_rate:
            batch = resample(batch, int(sample_rate), self.sample_rate)
        rate = self.sample_rate
        spans = part_spans(batch.shape[-1] / rate, part_s, part_hop_s)
        whole = self._run(batch)
        if len(spans) == 1:
            return whole, whole[:, None], spans
        n = int(round(spans[0][1] * rate))
        cuts = np.concatenate([batch[:, int(round(s * rate)):][:, :n] for s, _ in spans])
        parts = self._run(cuts).reshape(len(spans), len(batch), -1).transpose(1, 0, 2)
        return whole, parts, spans

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"waveform": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """`[n, d]` embeddings of the strings as given, computed by a child process that loads the
        full model (seconds per call: meant for prompts that are embedded once)."""
        if isinstance(texts, str):
            raise TypeError("embed_text takes a list of strings, not one string")
        if len(texts) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = run_child(__name__, {"op": "text", "weights": self.weights, "texts": list(texts)},
                        "text-encoder", TIMEOUT_S)
        return np.load(io.BytesIO(out), allow_pickle=False)


def load_onnx_model(weights: str | os.PathLike = "default", threads: int | None = None,
                    precision: str = "fp32") -> OnnxAudioModel:
    """`weights` as for `load_model`. A child process exports the audio path into a temporary
    folder; the session is built from it and the folder removed. `threads`: ONNX Runtime's
    intra-op threads (default: all cores). `precision`: fp32 only (`clap_core.precision`)."""
    check_onnx_precision(precision)
    weights = str(weights)
    if not exportable(weights):
        raise ClapError(f"weights '{weights}': its audio tower is not one that exports to ONNX "
                        f"({', '.join(EXPORTABLE_AUDIO_TOWERS)}); use clap_core.load_model")
    with tempfile.TemporaryDirectory(prefix="clap-onnx-") as tmp:
        run_child(__name__, {"op": "export", "weights": weights, "folder": tmp}, "ONNX export", TIMEOUT_S)
        meta = json.loads((Path(tmp) / _META).read_text())
        session = cpu_session(str(Path(tmp) / _GRAPH), threads or os.cpu_count() or 1, arena=False)
    return OnnxAudioModel(weights, ModelConfig.from_dict(meta["config"]), meta["logit_scale"], session)


def exportable(weights: str | os.PathLike) -> bool:
    """Whether the audio tower of `weights` exports to ONNX, read from its config without loading
    anything. Anything unreadable answers True: the export then reports the actual problem."""
    from .weights_registry import resolve_weights

    path = resolve_weights(weights)
    folder = path.parent if path.suffix == ".safetensors" else path
    if not folder.is_dir():
        return not _holds_htsat(path)  # an MS-CLAP .pth: CNN14 (2022) exports, HTS-AT (2023) not yet
    try:
        data = json.loads((folder / "config.json").read_text())
        if data.get("model_type") == "clap":  # a transformers ClapModel folder (LAION-CLAP)
            return False
        kind = data["audio"]["kind"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return True
    return kind in EXPORTABLE_AUDIO_TOWERS


def _holds_htsat(path: Path) -> bool:
    """Whether a `torch.save` zip names HTS-AT keys (MS-CLAP 2023), read from its pickle's bytes
    without unpickling or importing torch."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            return bool(pickles) and b"audio_encoder.base.htsat." in archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile):
        return False


def cpu_session(model: str | bytes, threads: int, arena: bool = True) -> Any:
    """An ONNX Runtime CPU session, sequential so results are deterministic. `arena=False` hands
    activation memory back after each run instead of keeping the largest batch's for good."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = arena
    # Idle worker threads sleep instead of spinning: on a robot the CPU is shared with other nodes.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


# -- the child's side (imports torch) ------------------------------------------------------------
def export_audio_path(model: Any, folder: Path) -> None:
    """Write `model`'s waveform → embedding path as `folder/audio.onnx` (+ its weights beside it, as
    ONNX external data) and the config and logit scale as `folder/model.json`."""
    import onnx
    import torch

    if model.config.audio.kind not in EXPORTABLE_AUDIO_TOWERS:
        raise ClapError(f"audio tower '{model.config.audio.kind}' does not export to ONNX "
                        f"(exportable: {', '.join(EXPORTABLE_AUDIO_TOWERS)})")

    class AudioPath(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tower, self.projection = model.audio_tower, model.audio_projection

        def forward(self, waveform: torch.Tensor) -> torch.Tensor:
            return self.projection(self.tower(waveform))

    example = torch.randn(1, int(model.sample_rate * model.clip_seconds), generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(AudioPath().eval(), (0.1 * example,), buffer, dynamo=False, opset_version=17,
                          input_names=["waveform"], output_names=["embedding"],
                          dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "embedding": {0: "batch"}})
    onnx.save(onnx.load_from_string(buffer.getvalue()), str(folder / _GRAPH), save_as_external_data=True,
              all_tensors_to_one_file=True, location=_GRAPH + ".data", size_threshold=1024)
    meta = {"config": model.config.to_dict(), "logit_scale": float(model.logit_scale.detach())}
    (folder / _META).write_text(json.dumps(meta))


def _handle(request: dict[str, Any]) -> bytes:
    from . import load_model

    if request["op"] == "export":
        export_audio_path(load_model(request["weights"], isolate_text=True), Path(request["folder"]))
        return b""
    emb = load_model(request["weights"]).embed_text(request["texts"]).float().cpu().numpy()
    buffer = io.BytesIO()
    np.save(buffer, emb, allow_pickle=False)
    return buffer.getvalue()


if __name__ == "__main__":
    raise SystemExit(serve(_handle))
