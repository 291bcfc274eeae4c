"""A torch-free model for long-running inference: the audio path exported to ONNX, run by ONNX Runtime.

Why: once its prompts are embedded, a robot's node only turns audio into embeddings, yet a process
that imports torch holds ≈ 220 MB of torch's own code and tables before a single weight is loaded.
`load_onnx_model` has a short-lived child process (`python -m clap_core.onnx_model`) load the
checkpoint with torch and export the whole audio path — log-Mel front end, tower, projection — to
ONNX; this process then only runs that graph with ONNX Runtime, and `embed_text` hands prompts to
another child. Neither torch nor the text encoder is ever imported here. Numbers: `docs/core.md`.

Two kinds of audio path export: towers built from torch operations (CNN14, the MS-CLAP 2022
tower) as one graph, waveform → embedding; and the default model's YAMNet tower, which is an ONNX
Runtime graph already: its rewritten graph is written beside the projection's, and this process
runs them with the torch-free `towers.yamnet_runner.YamnetRunner` between (the code the torch
tower runs too). Load it through `clap_core.factory.load_model` (runtime "onnx" or "auto").
"""
from __future__ import annotations

import io
import json
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from .audio_io import resample, waveform_batch
from .child_process import run_child, serve
from .config import ModelConfig
from .devices import parse_device
from .errors import ClapError, ConfigError
from .onnx_cache import export_folder
from .parts import Span, part_spans
from .precision import check_onnx_precision
from .protocol import capped_scale, scaled_cosine
from .towers.text_source import embeddings_in_child

if TYPE_CHECKING:
    from .towers.yamnet_runner import YamnetRunner

EXPORTABLE_AUDIO_TOWERS = ("cnn14", "yamnet")
TIMEOUT_S = 900.0  # loading and exporting CNN14 takes ~10–20 s on 2 cores; a hung child must not hang us
_GRAPH, _META = "audio.onnx", "model.json"
_YAMNET, _PROJECTION = "yamnet.onnx", "projection.onnx"  # the YAMNet kind's two graphs


class AudioPath(Protocol):
    """Batches of waveforms at the model's rate → joint-space embeddings, as exported."""

    def embed(self, batch: np.ndarray) -> np.ndarray: ...

    def embed_parts(self, batch: np.ndarray, part_s: float,
                    part_hop_s: float) -> tuple[np.ndarray, np.ndarray, list[Span]]: ...

    def cache_patches(self, entries: int) -> bool: ...


class GraphPath:
    """The whole path in one graph (CNN14): parts are cut from the waveform and run through it,
    about (1 + parts × part/window) of the whole-window cost (docs/predicates.md). They are shorter
    clips rather than stretches of one conv pass: same spans, close but not equal embeddings."""

    def __init__(self, session: Any, sample_rate: int) -> None:
        self._session, self._rate = session, int(sample_rate)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"waveform": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def embed_parts(self, batch: np.ndarray, part_s: float,
                    part_hop_s: float) -> tuple[np.ndarray, np.ndarray, list[Span]]:
        rate = self._rate
        spans = part_spans(batch.shape[-1] / rate, part_s, part_hop_s)
        whole = self.embed(batch)
        if len(spans) == 1:
            return whole, whole[:, None], spans
        n = int(round(spans[0][1] * rate))
        cuts = np.concatenate([batch[:, int(round(s * rate)):][:, :n] for s, _ in spans])
        parts = self.embed(cuts).reshape(len(spans), len(batch), -1).transpose(1, 0, 2)
        return whole, parts, spans

    def cache_patches(self, entries: int) -> bool:
        """No patch reuse: CNN14's convolutions see across the whole window."""
        return False


class YamnetPath:
    """YAMNet's runner, then the projection graph on its pooled features (whole and parts)."""

    def __init__(self, runner: YamnetRunner, projection: Any) -> None:
        self._runner, self._projection = runner, projection  # projection: an ONNX Runtime session

    def _project(self, features: np.ndarray) -> np.ndarray:
        flat = np.ascontiguousarray(features.reshape(-1, features.shape[-1]), dtype=np.float32)
        return self._projection.run(None, {"features": flat})[0].reshape(*features.shape[:-1], -1)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self._project(self._runner(batch))

    def embed_parts(self, batch: np.ndarray, part_s: float,
                    part_hop_s: float) -> tuple[np.ndarray, np.ndarray, list[Span]]:
        whole, parts, spans = self._runner.parts(batch, part_s, part_hop_s)
        return self._project(whole), self._project(parts), spans

    def cache_patches(self, entries: int) -> bool:
        return bool(self._runner.cache_patches(entries))


class OnnxAudioModel:
    """`protocol.InferenceModel` without torch: the audio path run by ONNX Runtime (`AudioPath`),
    text by a child process. Results equal `ClapModel`'s within float32 rounding (tested)."""

    runtime = "onnx"
    prefers_one_torch_thread = False  # no torch in this process

    def __init__(self, weights: str, config: ModelConfig, logit_scale: float, path: AudioPath,
                 device: str = "cpu") -> None:
        self.weights = weights
        self.config = config
        self._log_scale = float(logit_scale)  # the learned log of the scale, as exported
        self._path = path
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
        return self._path.embed(self._batch(waveform, sample_rate))

    def embed_audio_parts(self, waveform: Any, sample_rate: int, part_s: float,
                          part_hop_s: float) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
        """`embed_audio` plus parts, as `ClapModel.embed_audio_parts` (how: the `AudioPath`)."""
        return self._path.embed_parts(self._batch(waveform, sample_rate), part_s, part_hop_s)

    def _batch(self, waveform: Any, sample_rate: int) -> np.ndarray:
        batch = waveform_batch(np.asarray(waveform, dtype=np.float32))
        if int(sample_rate) != self.sample_rate:
            batch = resample(batch, int(sample_rate), self.sample_rate)
        return batch

    def embed_text(self, texts: Sequence[str], mixes: Sequence[str] | None = None) -> np.ndarray:
        """`[n, d]` embeddings of the strings as given (`mixes` as `ClapModel.embed_text`), computed
        by a child process that loads the full model (seconds per call: meant for prompts that are
        embedded once)."""
        if isinstance(texts, str):
            raise TypeError("embed_text takes a list of strings, not one string")
        if len(texts) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        return embeddings_in_child(self.weights, texts, mixes)

    def similarity(self, audio_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
        return scaled_cosine(audio_emb, text_emb, self.logit_scale)

    def release_text_tower(self) -> bool:
        """Nothing to release: the text encoder never enters this process."""
        return False

    def compact_for_inference(self) -> None:
        """Nothing to compact: the session holds only the audio path's inference weights."""

    def cache_patches(self, entries: int) -> bool:
        return self._path.cache_patches(entries)


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
        config = ModelConfig.from_dict(meta["config"])
        path, where = _audio_path(folder, config, meta, threads, wanted)
    return OnnxAudioModel(weights, config, meta["logit_scale"], path, where)


def _audio_path(folder: Path, config: ModelConfig, meta: dict[str, Any], threads: int | None,
                device: str) -> tuple[AudioPath, str]:
    """The sessions of an export folder, and where they run."""
    providers, where = execution_providers(device)
    if config.audio.kind != "yamnet":
        session = cpu_session(str(folder / _GRAPH), threads or os.cpu_count() or 1, arena=False,
                              providers=providers)
        return GraphPath(session, config.audio.sample_rate), where
    from .towers.yamnet_runner import YamnetRunner

    options = dict(config.audio.options)
    tower_threads = int(options.pop("threads", 0))  # the tower's own setting, as the torch runtime uses it
    network = cpu_session(str(folder / _YAMNET), threads or tower_threads or os.cpu_count() or 1,
                          providers=providers)
    runner = YamnetRunner(network, *meta["yamnet_input"], **options)
    return YamnetPath(runner, cpu_session(str(folder / _PROJECTION), 1, providers=providers)), where


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
    """Write `model`'s waveform → embedding path into `folder` and its config and logit scale as
    `folder/model.json`: CNN14 as one graph `audio.onnx` (+ its weights beside it, as ONNX external
    data); YAMNet as its rewritten graph `yamnet.onnx` and the projection `projection.onnx`."""
    import torch

    kind = model.config.audio.kind
    if kind not in EXPORTABLE_AUDIO_TOWERS:
        raise ClapError(f"audio tower '{kind}' does not export to ONNX "
                        f"(exportable: {', '.join(EXPORTABLE_AUDIO_TOWERS)})")
    meta = {"config": model.config.to_dict(), "logit_scale": float(model.logit_scale.detach())}
    if kind == "yamnet":
        from .towers.yamnet import batched_onnx_bytes

        graph, scale, zero = batched_onnx_bytes()
        (folder / _YAMNET).write_bytes(graph)
        meta["yamnet_input"] = [scale, zero]
        features = torch.rand(2, int(model.audio_tower.out_dim), generator=torch.Generator().manual_seed(0))
        _export(model.audio_projection, features, folder / _PROJECTION, "features", {0: "rows"})
    else:
        class AudioPath(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.tower, self.projection = model.audio_tower, model.audio_projection

            def forward(self, waveform: torch.Tensor) -> torch.Tensor:
                return self.projection(self.tower(waveform))

        samples = int(model.sample_rate * model.clip_seconds)
        example = 0.1 * torch.randn(1, samples, generator=torch.Generator().manual_seed(0))
        _export(AudioPath(), example, folder / _GRAPH, "waveform", {0: "batch", 1: "samples"})
    (folder / _META).write_text(json.dumps(meta))


def _export(module: Any, example: Any, path: Path, input_name: str, axes: dict[int, str]) -> None:
    """`module` (eval) as an ONNX graph at `path`, its weights as external data beside it."""
    import onnx
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(module.eval(), (example,), buffer, dynamo=False, opset_version=17,
                          input_names=[input_name], output_names=["embedding"],
                          dynamic_axes={input_name: axes, "embedding": {0: axes[0]}})
    onnx.save(onnx.load_from_string(buffer.getvalue()), str(path), save_as_external_data=True,
              all_tensors_to_one_file=True, location=path.name + ".data", size_threshold=1024)


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
