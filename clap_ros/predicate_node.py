"""The streaming predicate node: audio in, one AudioPredicates message per hop out.

A thin ROS adapter around `clap_core.predicates.PredicateEngine`: it declares the parameters,
picks the audio source, runs the engine on its own thread (so capture and the executor never wait
for the model), and publishes results, per-predicate Bools and diagnostics. Changing the `config`
parameter at run time reloads the predicates; a bad file is rejected and the old set stays live.

Run:  python -m clap_ros.predicate_node --ros-args -p config:=config/predicates.yaml -p source:=topic
"""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from typing import Any

from clap_core.child_process import stop_children
from clap_core.errors import ClapError, ConfigError
from clap_core.protocol import InferenceModel

from .messages import interfaces_hint
from .node_settings import NodeSettings, declare_settings

NODE_NAME = "clap_predicate_node"
GIL_SWITCH_INTERVAL_S = 0.0001


def load_node_model(s: NodeSettings) -> InferenceModel:
    """The model the node runs, through the factory replay and calibrate use (`audio_runtime`,
    `compute_device`, `precision`); with torch, the text tower is kept out of the process unless told otherwise."""
    from clap_core import load_model

    return load_model(s.weights, runtime=s.audio_runtime, device=s.compute_device,
                      isolate_text=s.text_in_child_process, onnx_cache_dir=s.onnx_cache_dir or None,
                      precision=s.precision, device_parameter="compute_device",
                      runtime_parameter="audio_runtime")


def model_window(s: NodeSettings, model: InferenceModel) -> float:
    """The window: `window_s` when set, else the clip length the model was trained on."""
    window = float(s.window_s or model.clip_seconds)
    if not 0.0 < s.hop_s <= window:
        raise ConfigError(f"parameter 'hop_s': must be in (0, window_s={window}] (the model's clip length "
                          f"unless window_s is set), got {s.hop_s}")
    if s.buffer_s < 2 * window:
        raise ConfigError(f"parameter 'buffer_s': must be at least 2 * window ({window} s), got {s.buffer_s}")
    return window


def warm_up_and_trim(model: InferenceModel, window_s: float) -> None:
    """Compact the model for inference, run one silent window through the audio tower, then hand
    freed heap back to the OS.

    The first inference pays one-off costs (weight packing, allocator growth) that would otherwise
    land on the first real window's latency; and the released text tower's memory stays in the
    process until glibc is asked to return it.
    """
    import ctypes
    import gc

    import numpy as np

    model.compact_for_inference()  # the node never trains: keep only what inference needs
    model.embed_audio(np.zeros((1, int(model.sample_rate * window_s)), np.float32), int(model.sample_rate))
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


class PredicateNode:
    """Owns the rclpy node, the engine, the source and the inference thread."""

    def __init__(self, node: Any) -> None:
        from clap_ros_interfaces.msg import AudioPredicates
        from diagnostic_msgs.msg import DiagnosticArray

        from clap_core.predicates import PredicateEngine, load_predicate_config

        from .bag_recorder import open_recorder
        from .diagnostics import InferenceStats
        from .messages import installed_audio_layout

        self.node = node
        self.log = node.get_logger()
        self.settings = declare_settings(node)
        s = self.settings
        cfg = load_predicate_config(s.config)
        # Everything that can fail without the model fails before it loads.
        self._layout = installed_audio_layout() if s.source == "topic" else ""
        self.log.info(f"loading weights '{s.weights}' (precision {s.precision})")
        model = load_node_model(s)
        self.log.info(f"model '{model.name}' runs on {model.runtime}, {model.device}")
        self.settings = s = dataclasses.replace(s, window_s=model_window(s, model))
        self.engine = PredicateEngine(model, cfg, window_s=s.window_s, hop_s=s.hop_s)
        warm_up_and_trim(model, s.window_s)
        self.stats = InferenceStats()
        self._config_path = s.config  # the file currently live (changes on a good reload)
        self.stats.config(s.config, len(cfg.predicates), "loaded at start")
        self._errors_reported = 0
        self._pub = node.create_publisher(AudioPredicates, "audio_predicates", 10)
        self._diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._bool_pubs: dict[str, Any] = {}
        self._bool_lock = threading.Lock()  # the inference thread publishes while a reload edits the dict
        self._sync_bool_publishers(self.engine.names)
        self.source = self._make_source()
        self.recorder = open_recorder(s.record_dir, self.log)
        node.add_on_set_parameters_callback(self._on_set_parameters)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._inference_loop, name="inference", daemon=True)
        self._diag_timer = node.create_timer(s.diagnostics_period_s, self._publish_diagnostics)
        self.source.start()
        self._worker.start()
        self.log.info(f"{len(cfg.predicates)} predicates ({', '.join(self.engine.names)}); source={s.source}, "
                      f"window {s.window_s} s, hop {s.hop_s} s")

    # -- construction helpers ------------------------------------------------------------------
    def _source_log(self, level: str, message: str) -> None:
        # One call site per severity: rclpy refuses a call site whose severity changes.
        if level == "error":
            self.log.error(message)
        elif level == "warn":
            self.log.warning(message)
        else:
            self.log.info(message)

    def _make_source(self) -> Any:
        from .microphone import MicrophoneSource
        from .topic_source import TopicSource

        s = self.settings
        if s.source == "microphone":
            return MicrophoneSource(
                device=s.device, sample_rate=s.sample_rate, channels=s.channels, ring_seconds=s.buffer_s,
                retry_initial_s=s.retry_initial_s, retry_max_s=s.retry_max_s, log=self._source_log,
            )
        layout = self._layout
        self.log.info(f"audio topic '{s.audio_topic}', audio_common_msgs layout: {layout}")
        return TopicSource(
            self.node, layout, s.audio_topic, info_topic=s.audio_info_topic, silence_timeout_s=s.silence_timeout_s,
            queue_seconds=s.buffer_s, fallback_rate=s.sample_rate, fallback_channels=s.channels, log=self._source_log,
        )

    def _sync_bool_publishers(self, names: list[str]) -> None:
        """One Bool publisher per name; those of other names are destroyed (a reload that drops or
        renames a predicate must not leave its topic advertised for the rest of the run)."""
        from std_msgs.msg import Bool

        if not self.settings.publish_bools:
            return
        with self._bool_lock:
            for name in set(self._bool_pubs) - set(names):
                self.node.destroy_publisher(self._bool_pubs.pop(name))
            for name in names:
                if name not in self._bool_pubs:
                    self._bool_pubs[name] = self.node.create_publisher(Bool, f"audio_predicates/{name}", 10)

    # -- hot reload ----------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Any]) -> Any:
        """Reload predicates when `config` changes; reject (old set stays) if the new file is bad."""
        from rcl_interfaces.msg import SetParametersResult

        from clap_core.predicates import load_predicate_config

        for p in params:
            if p.name != "config":
                continue
            path = str(p.value)
            try:  # the engine embeds the new prompts while inference goes on with the old set
                cfg = load_predicate_config(path)
                # the new set's Bool topics exist before its first window is published
                self._sync_bool_publishers([*self.engine.names, *cfg.names])
                self.engine.set_config(cfg)
            except ClapError as exc:
                self._sync_bool_publishers(self.engine.names)
                message = f"config reload rejected, keeping the previous predicates: {exc}"
                self.log.error(message)
                self.stats.config(self._config_path, len(self.engine.names), f"rejected {path}: {exc}")
                return SetParametersResult(successful=False, reason=message)
            self._config_path = path
            self._sync_bool_publishers(self.engine.names)
            self.stats.config(path, len(cfg.predicates), f"reloaded {path}")
            self.log.info(f"reloaded {path}: {len(cfg.predicates)} predicates ({', '.join(self.engine.names)})")
        return SetParametersResult(successful=True)

    # -- inference thread ----------------------------------------------------------------------
    def _inference_loop(self) -> None:
        """Drain the source, run the engine, publish. Never dies on bad audio or a model error."""
        from .audio_chunks import coalesce
        while not self._stop.is_set():
            for chunk in coalesce(self.source.read(timeout=0.2)):
                if self.recorder is not None:
                    self.recorder.audio(chunk.samples, chunk.sample_rate, chunk.t_first)
                try:
                    results = self.engine.push(chunk.samples, chunk.sample_rate, chunk.t_first)
                except Exception as exc:  # noqa: BLE001 - one bad chunk must not stop the node
                    message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                    self.stats.error(message)
                    self.log.error(f"inference failed on a chunk at t={chunk.t_first:.3f}: {message}",
                                   throttle_duration_sec=5.0)
                    continue
                for result in results:
                    self._publish(result, chunk.arrival)

    def _publish(self, result: Any, arrival: float) -> None:
        """One AudioPredicates message, the Bools, and the latency since the audio arrived."""
        from std_msgs.msg import Bool

        from .messages import predicates_msg

        msg = predicates_msg(result, self.settings.frame_id)
        self._pub.publish(msg)
        if self.recorder is not None:
            self.recorder.message("/audio_predicates", msg)
        if "skipped" not in result.flags:
            with self._bool_lock:
                for name, value in zip(result.names, result.values):
                    pub = self._bool_pubs.get(name)
                    if pub is not None:
                        pub.publish(Bool(data=bool(value)))
        latency = time.time() - arrival
        self.stats.window(result.inference_s, result.level_dbfs, list(result.flags), latency)

    # -- diagnostics ---------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        from .diagnostics import (background_status, diagnostic_array, inference_status, recorder_status,
                                  source_status)

        snap = self.stats.snapshot()
        new_errors = snap.errors > self._errors_reported
        self._errors_reported = snap.errors
        name = self.node.get_name()
        statuses = [source_status(name, self.source.health()), inference_status(name, snap, new_errors),
                    background_status(name, self.engine.background_state())]
        if self.recorder is not None:
            statuses.append(recorder_status(name, self.recorder.health()))
        diag = diagnostic_array(self.node.get_clock().now().to_msg(), statuses)
        self._diag_pub.publish(diag)
        if self.recorder is not None:
            self.recorder.message("/diagnostics", diag)

    def close(self) -> None:
        """Stop capture and the inference thread (called once, on shutdown); a reload's text child
        is killed rather than waited for (the reload is then rejected, saying why)."""
        stop_children()
        self._stop.set()
        self.source.stop()
        self._worker.join(timeout=5.0)
        if self.recorder is not None:
            self.recorder.close()


def _stop_start_up_on_signal(starting: threading.Event) -> threading.Event:
    """SIGINT or SIGTERM while the node starts ends the start (KeyboardInterrupt: a child process
    exporting or embedding is killed, its temporary folder removed). rclpy's own handler only shuts
    the context down: the start went on loading for seconds, then died on the dead context with a
    traceback and exit code 1. Installed before `rclpy.init`, whose handler calls it; once started it
    does nothing and rclpy's shutdown ends the spin. Returns an event set by a start-up signal: a
    KeyboardInterrupt raised inside a callback Python ignores exceptions from (importlib's
    module-lock callback, seen in the 20-cycle test) is lost, and the start then fails on the dead
    context instead — with the event set, that failure is the stop, not an error."""
    stopped = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if starting.is_set():
            stopped.set()
            raise KeyboardInterrupt(f"{signal.Signals(signum).name} during start-up")

    def quiet_lost_stop(unraisable: Any) -> None:  # that lost KeyboardInterrupt is not an error
        if not (stopped.is_set() and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            sys.__unraisablehook__(unraisable)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sys.unraisablehook = quiet_lost_stop
    return stopped


def _stop_children_on_signal(starting: threading.Event) -> None:
    """Once started, SIGINT/SIGTERM kill a reload's text child at once, from a thread of its own.

    rclpy's executor does not always leave its spin while a callback runs: a reload embedding its
    prompts kept the node for the child's whole run (4 s in the faults test, up to the child's
    timeout if it hangs). Python's C-level handler writes each signal's number to the wakeup fd
    whatever the main thread is doing; this thread reads it. During start-up the signal's
    KeyboardInterrupt ends the child instead (`_stop_start_up_on_signal`)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            received = set(os.read(read_fd, 64))
            if not starting.is_set() and received & {signal.SIGINT, signal.SIGTERM}:
                stop_children()

    threading.Thread(target=watch, name="stop-children", daemon=True).start()


def _failure_exit_code(node: Any, exc: Exception, stopped: threading.Event) -> int:
    """The exit code of a start or spin that raised: 0 when a signal had asked the node to stop
    (a failure on the context rclpy's handler shut down is that stop: the 20-cycle test saw
    rclpy's executor raise RCLError, not ExternalShutdownException, when SIGTERM landed between its
    check and its wait set), 2 with one FATAL line for what a user can fix; anything else re-raised."""
    if stopped.is_set() or not node.context.ok():
        return 0
    if isinstance(exc, ClapError):
        node.get_logger().fatal(f"cannot start: {exc}")
    elif isinstance(exc, ImportError):
        node.get_logger().fatal(f"cannot start: {exc}; {interfaces_hint()}")
    else:
        raise exc
    return 2


def main(argv: list[str] | None = None) -> int:
    """Console entry: exit 0 on SIGINT/SIGTERM, 2 with a one-line message on a bad start."""
    try:
        return _run(argv)
    except KeyboardInterrupt:  # a start-up stop whose interrupt landed on the error or clean-up path
        return 0
    finally:
        _forget_interrupted_string_exec()


def _forget_interrupted_string_exec() -> None:
    """Keep a handled start-up stop from turning into a death by SIGINT (exit -2, no traceback).

    When a KeyboardInterrupt ends code run by `exec`/`eval` of a *string* (dataclasses and
    namedtuple build their methods that way while the node imports and loads), CPython's
    `run_eval_code_obj` sets a flag that the interpreter is dying of an unhandled interrupt, even
    though the node catches it; under `python -m` (`Py_RunMain`) that flag then re-raises SIGINT
    at exit. The flag is cleared at the start of every string eval: one harmless eval clears it.
    Found by the 20-cycle start/stop test (SIGTERM while loading, exit -2 in CI)."""
    exec("pass")  # noqa: S102 - a constant string, for the side effect above


def _run(argv: list[str] | None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    starting = threading.Event()
    starting.set()
    stopped = _stop_start_up_on_signal(starting)
    _stop_children_on_signal(starting)
    rclpy.init(args=argv if argv is not None else sys.argv)
    # The inference thread calls into torch (runtime 'torch') dozens of times per window and must
    # win the GIL back from the executor thread each time; Python's default 5-ms hand-over made a 60-ms CNN14
    # window take ~0.7 s in the node (0.5 ms: ~0.3 s; 0.1 ms: ~0.1 s, bench/bench_node.py).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    node = rclpy.create_node(NODE_NAME)
    app: PredicateNode | None = None
    code = 0
    try:
        app = PredicateNode(node)
        starting.clear()
        if stopped.is_set():  # its KeyboardInterrupt was lost where it landed
            raise KeyboardInterrupt("signal during start-up")
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - sorted by _failure_exit_code; the rest re-raised
        code = _failure_exit_code(node, exc, stopped)
    finally:
        starting.clear()  # a signal now must not interrupt the clean-up
        if app is not None:
            app.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
