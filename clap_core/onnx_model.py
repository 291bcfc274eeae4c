"""A torch-free model for long-running inference: the audio path exported to ONNX, run by ONNX Runtime.

Why: once its prompts are embedded, a robot's node only turns audio into embeddings, yet a process
that imports torch holds ≈ 220 MB of torch's own code and tables before a single weight is loaded.
`load_onnx_model` has a short-lived child process (`python -m clap_core.onnx_model`) load the
checkpoint with torch and export the whole audio path — log-Mel front end, tower, projection — to
ONNX; this process then only runs that graph with ONNX Runtime, and `embed_text` hands prompts to
another child. Neither torch nor the text encoder is ever imported here. Numbers: `docs/core.md`.

Only towers built from torch operations export (CNN14, the MS-CLAP 2022 tower). The default
model's YAMNet tower is an ONNX Runtime graph already and runs in the torch runtime. Load it
through `clap_core.factory.load_model` (runtime "onnx" or "auto").
"""
from __future__ import annotations

import io
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .audio_io import resample, waveform_batch
from .child_process import run_child, serve
from .config import ModelConfig
from .devices import parse_device
from .errors import ClapError, ConfigError
from .onnx_cache import export_folder
from .parts import part_spans
from .precision import check_onnx_precision
from .protocol import capped_scale, scaled_cosine
from .towers.text_source import embeddings_in_child

EXPORTABLE_AUDIO_TOWERS = ("cnn14",)
TIMEOUT_S = 900.0  # loading and exporting CNN14 takes ~10–20 s on 2 cores; a hung child must not hang us
_GRAPH, _META = "audio.onnx", "model.json"


class OnnxAudioModel:
    """`protocol.InferenceModel` without torch: the audio path as an ONNX Runtime session, text by
    a child process. Results equal `ClapModel`'s within float32 rounding (tested: cosine ≥ 0.99999)."""

    runtime = "onnx"
    prefers_one_torch_thread = False  # no torch in this process

    def __init__(self, weights: str, config: ModelConfig, logit_scale: float, session: Any,
                 device: str = "cpu") -> None:
        self.weights = weights
        self.config = config
        self._log_scale = float(logit_scale)  # the learned log of the scale, as exported
        self._session = session
        self._device = device

    @property
    def name(self) -> str:
        return str(self.config.name)

    @property
    def sample_rate(self) -> int:
        return int(self.config.audio.sample_rate)

    @property
    def embed_dim(self) -> int:
        return int(self.config.embed_dim)

    @property
    def clip_seconds(self) -> float:
        return float(self.config.clip_seconds)

    @property
    def logit_scale(self) -> float:
        return capped_scale(self._log_scale, self.config.logit_scale_max)

    @property
    def template(self) -> str:
        return str(self.config.template)

    @property
    def device(self) -> str:
        return self._device

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
        return embeddings_in_child(self.weights, texts)

    def similarity(self, audio_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
        return scaled_cosine(audio_emb, text_emb, self.logit_scale)

    def release_text_tower(self) -> bool:
        """Nothing to release: the text encoder never enters this process."""
        return False

    def compact_for_inference(self) -> None:
        """Nothing to compact: the session holds only the audio path's inference weights."""

    def cache_patches(self, entries: int) -> bool:
        """No patch reuse: CNN14's convolutions see across the whole window."""
        return False


def load_onnx_model(weights: str | os.PathLike = "default", threads: int | None = None, device: str = "cpu",
                    device_parameter: str = "device", cache_dir: str | os.PathLike | None = None,
                    precision: str = "fp32") -> OnnxAudioModel:
    """`weights` as for `factory.load_model`. A child process checks `device` (it has torch to ask
    for CUDA: a bad one is a ConfigError naming `device_parameter`) and exports the audio path into
    a temporary folder; the session is built from it and the folder removed. With `cache_dir` the
    export is kept there, keyed by the weights' checksum, and later loads of the same weights skip
    it (`onnx_cache`). `threads`: ONNX Runtime's intra-op threads (default: all cores).
    `precision`: fp32 only (`clap_core.precision`)."""
    check_onnx_precision(precision)
    weights = str(weights)
    parse_device(device, device_parameter)  # a misspelling fails before the child starts
    if not exportable(weights):
        raise ConfigError(f"weights '{weights}': its audio tower is not one that exports to ONNX "
                          f"({', '.join(EXPORTABLE_AUDIO_TOWERS)}); load it with clap_core.load_model(runtime='torch' or 'auto')")
    resolved: dict[str, str] = {}

    def export(folder: Path) -> None:
        resolved["device"] = _child_job(weights, device, device_parameter, folder)

    with export_folder(weights, cache_dir, export) as folder:
        meta = json.loads((folder / _META).read_text())
        wanted = resolved.get("device") or (
            "cpu" if device == "cpu" else _child_job(weights, device, device_parameter, None))
        providers, where = execution_providers(wanted)
        session = cpu_session(str(folder / _GRAPH), threads or os.cpu_count() or 1, arena=False,
                              providers=providers)
    return OnnxAudioModel(weights, ModelConfig.from_dict(meta["config"]), meta["logit_scale"], session, where)


def execution_providers(device: str) -> tuple[list[Any], str]:
    """ONNX Runtime providers for a resolved device ('cpu' or 'cuda:N') and where it will run:
    the CUDA execution provider when this onnxruntime has it, else the CPU, said on stderr."""
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"], "cpu"
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"clap_core: {device} requested, but this onnxruntime has no CUDAExecutionProvider "
              "(install onnxruntime-gpu): the ONNX audio path runs on the CPU", file=sys.stderr, flush=True)
        return ["CPUExecutionProvider"], "cpu"
    index = int(device.split(":")[1])
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"], device


def _child_job(weights: str, device: str, parameter: str, folder: Path | None) -> str:
    """The device resolved by the child (it has torch to ask for CUDA); with `folder`, the audio
    path exported there too (a cached export needs only the device, and only when not 'cpu')."""
    request = {"op": "export", "weights": weights, "folder": str(folder) if folder else None,
               "device": device, "parameter": parameter}
    return run_child(__name__, request, "ONNX export", TIMEOUT_S).decode().strip() or "cpu"


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


def cpu_session(model: str | bytes, threads: int, arena: bool = True, providers: list[Any] | None = None) -> Any:
    """An ONNX Runtime session (CPU unless `providers` says otherwise), sequential so results are
    deterministic. `arena=False` hands activation memory back after each run instead of keeping
    the largest batch's for good."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = arena
    # Idle worker threads sleep instead of spinning: on a robot the CPU is shared with other nodes.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=opts, providers=providers or ["CPUExecutionProvider"])


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
    """The export child: the device resolved (as text) on stdout, the graph in the folder."""
    from .devices import resolve_device
    from .factory import load_torch_model

    device = resolve_device(request.get("device", "cpu"), request.get("parameter", "device"))
    if request.get("folder"):
        export_audio_path(load_torch_model(request["weights"], isolate_text=True), Path(request["folder"]))
    return str(device).encode()


if __name__ == "__main__":
    raise SystemExit(serve(_handle))
