"""Live soak: the real node over real DDS for N minutes of real-time audio, from a topic and from the
PulseAudio virtual microphone (`python bench/soak.py --live --minutes 20`).

The audio is the repository's scene recordings (test/bags/data, looped, over low room noise). Topic:
this process publishes 20-ms AudioStamped chunks (50 messages/s) in real time, each stamped with
the wall-clock time of its first sample, like a microphone driver. Microphone: a private PulseAudio
daemon plays the same audio into its null sink with `paplay`; the node records the monitor through
PortAudio. Printed per source, checked where marked ✓:

- windows received vs. the hop grid: lost ✓, duplicated ✓ and flagged 'gap' ✓ (all must be 0);
- overruns reported in the node's diagnostics ✓ (0) and inference errors ✓ (0);
- the node's resident memory after 20 % of the run (and at least 40 s) and at the end, growth ✓ (≤ 5 %);
- the node's CPU share over the run (100 % = one core) and latency from the end of a window to its
  message arriving, p50/p95/p99 (printed: they depend on the machine and its load).
"""
from __future__ import annotations

import math
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "test" / "ros"), str(ROOT / "bench")]

from bench_node import _proc_cpu_s, _proc_mem_mb  # noqa: E402
from node_harness import NodeProcess, PulseServer, RosClient, audio_stamped, sensor_qos  # noqa: E402

SCENES = [ROOT / "test" / "bags" / "data" / name for name in ("scene1_stamped_mcap", "scene2_stamped_sqlite3")]
CONFIG = ROOT / "config" / "predicates.yaml"
RATE, CHUNK_S = 16000, 0.02
MAX_RSS_GROWTH_PCT = 5.0
WARMUP_S = 40.0  # the node's RSS settles within ≈ 40 s of audio (allocator, runtime): measured, docs/reliability.md


@dataclass
class LiveReport:
    source: str
    minutes: float
    windows: int
    lost: int
    duplicated: int
    gaps: int
    overruns: int
    errors: int
    rss_start_mb: float
    rss_end_mb: float
    rss_growth_pct: float
    cpu_share_pct: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    rss_trace_mb: list[float] = field(default_factory=list)  # every 10 % of the run

    @property
    def ok(self) -> bool:
        return (self.windows > 0 and self.lost == self.duplicated == self.gaps == self.overruns == self.errors == 0
                and self.rss_growth_pct <= MAX_RSS_GROWTH_PCT)

    def line(self) -> str:
        return (f"{self.source:10s} {self.minutes:5.2f} min  windows {self.windows}  lost {self.lost}  "
                f"duplicated {self.duplicated}  gap {self.gaps}  overruns {self.overruns}  errors {self.errors}  "
                f"RSS {self.rss_start_mb:.0f} → {self.rss_end_mb:.0f} MB ({self.rss_growth_pct:+.2f} %)  "
                f"CPU {self.cpu_share_pct:.1f} % of a core  latency p50/p95/p99 {self.latency_p50_ms:.0f}/"
                f"{self.latency_p95_ms:.0f}/{self.latency_p99_ms:.0f} ms  {'ok' if self.ok else 'NOT ok'}\n"
                f"{'':11s}RSS every 10 % (MB): {' '.join(f'{x:.0f}' for x in self.rss_trace_mb)}")


def scene_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """`seconds` of the scene recordings, looped, over room noise at about -60 dBFS."""
    from clap_ros.bag_io import read_bag_audio

    parts = [np.concatenate([c.samples for c in read_bag_audio(p)[1]]).astype(np.float32) for p in SCENES]
    loop = np.concatenate(parts)
    n = int(round(seconds * RATE))
    audio = np.resize(loop, n)
    return audio + (np.random.default_rng(seed).standard_normal(n) * 1e-3).astype(np.float32)


class Watch:
    """What the node publishes: window ends and their arrival times, overruns, errors."""

    def __init__(self, client: RosClient, node: NodeProcess) -> None:
        from clap_ros_interfaces.msg import AudioPredicates
        from diagnostic_msgs.msg import DiagnosticArray

        self.ends: list[float] = []
        self.latencies: list[float] = []
        self.gaps = 0
        self.overruns = self.errors = 0
        self.source_state = ""
        self._node = node
        client.node.create_subscription(AudioPredicates, node.preds_topic, self._on_preds, 1000)
        client.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 100)

    def _on_preds(self, msg: Any) -> None:
        end = msg.window_end.sec + msg.window_end.nanosec * 1e-9
        self.latencies.append(time.time() - end)
        self.ends.append(end)
        self.gaps += "gap" in msg.flags

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            values = {kv.key: kv.value for kv in st.values}
            if st.name == f"{self._node.name}: audio source":
                self.overruns, self.source_state = int(values["overruns"]), values["state"]
            elif st.name == f"{self._node.name}: inference":
                self.errors = int(values["errors"])


def grid_check(ends: list[float], hop: float) -> tuple[int, int]:
    """(lost, duplicated) windows between the first and the last one received, on the hop grid."""
    if not ends:
        return 0, 0
    steps = np.round((np.asarray(ends) - ends[0]) / hop).astype(int)
    unique = len(set(steps.tolist()))
    return int(steps.max()) + 1 - unique, len(steps) - unique


def _stream_topic(client: RosClient, node: NodeProcess, audio: np.ndarray, on_progress: Any) -> None:
    """Publish `audio` in real time, 20-ms chunks stamped with the wall-clock time of their first sample."""
    from audio_common_msgs.msg import AudioStamped

    pub = client.node.create_publisher(AudioStamped, node.audio_topic, sensor_qos())
    client.spin_until(lambda: pub.get_subscription_count() > 0, 60, "the node's audio subscription", node)
    client.spin_for(1.5)
    n = int(CHUNK_S * RATE)
    wall0 = time.time()
    for i in range(0, len(audio), n):
        due = wall0 + (i + n) / RATE
        while (now := time.time()) < due:
            client.executor.spin_once(timeout_sec=max(0.0, min(0.005, due - now)))
        pub.publish(audio_stamped(audio[i:i + n], RATE, due - n / RATE))
        on_progress(i / len(audio))


def _stream_microphone(client: RosClient, node: NodeProcess, pulse: PulseServer, audio: np.ndarray,
                       on_progress: Any, watch: Watch) -> None:
    """Play `audio` into the virtual microphone (real time, by paplay) while spinning."""
    import soundfile as sf

    client.spin_until(lambda: watch.source_state == "running", 60, "the microphone to capture", node)
    wav = pulse.runtime_dir / "soak.wav"
    sf.write(wav, audio, RATE, subtype="PCM_16")
    player = threading.Thread(target=pulse.play, args=(wav, len(audio) / RATE + 60), daemon=True)
    start, seconds = time.monotonic(), len(audio) / RATE
    player.start()
    while player.is_alive():
        client.spin_for(0.2)
        on_progress(min((time.monotonic() - start) / seconds, 1.0))


def live_soak(source: str, minutes: float, weights: str = "default", hop_s: float = 0.5,
              config: Path = CONFIG, pulse: PulseServer | None = None) -> LiveReport:
    """Run the node for `minutes` of real-time audio from `source` ('topic' or 'microphone')."""
    params: dict[str, Any] = {"config": config, "weights": weights, "source": source, "hop_s": hop_s,
                              "diagnostics_period_s": 1.0}
    env = None
    if source == "microphone":
        assert pulse is not None, "the microphone soak needs a PulseServer"
        params["device"] = "pulse"
        env = {"XDG_RUNTIME_DIR": str(pulse.runtime_dir)}
    node = NodeProcess(params, env=env)
    client = RosClient()
    mark: dict[str, float] = {}
    trace: list[float] = []

    def on_progress(fraction: float) -> None:
        if fraction >= len(trace) / 10:
            trace.append(round(_proc_mem_mb(node.proc.pid)[0], 1))
        if "rss" not in mark and fraction >= 0.2 and fraction * minutes * 60 >= WARMUP_S:
            mark["rss"] = _proc_mem_mb(node.proc.pid)[0]  # after warm-up: what the node settles at

    try:
        watch = Watch(client, node)
        client.spin_until(lambda: client.node.count_publishers(node.preds_topic) > 0, 300, "the node", node)
        audio = scene_audio(minutes * 60)
        cpu0, wall0 = _proc_cpu_s(node.proc.pid), time.time()
        if source == "topic":
            _stream_topic(client, node, audio, on_progress)
        else:
            _stream_microphone(client, node, pulse, audio, on_progress, watch)
        client.spin_for(max(3.0, 3 * hop_s))
        cpu = (_proc_cpu_s(node.proc.pid) - cpu0) / (time.time() - wall0)
        rss_end = _proc_mem_mb(node.proc.pid)[0]
    finally:
        client.close()
        node.stop()
    lost, duplicated = grid_check(watch.ends, hop_s)
    lat = np.asarray(watch.latencies or [math.nan]) * 1000
    rss_start = mark.get("rss", rss_end)
    return LiveReport(source, round(minutes, 2), len(watch.ends), lost, duplicated, watch.gaps, watch.overruns,
                      watch.errors, round(rss_start, 1), round(rss_end, 1),
                      round(100 * (rss_end - rss_start) / rss_start, 2), round(100 * cpu, 1),
                      *(round(float(np.percentile(lat, q)), 1) for q in (50, 95, 99)), trace + [round(rss_end, 1)])


def run(minutes: float, sources: list[str], weights: str = "default", hop_s: float = 0.5) -> list[LiveReport]:
    """Each source in turn; the microphone one with its own private PulseAudio daemon."""
    reports = []
    for source in sources:
        if source == "microphone":
            with tempfile.TemporaryDirectory() as tmp:
                runtime = Path(tmp)
                runtime.chmod(0o700)
                pulse = PulseServer(runtime)
                pulse.start()
                try:
                    reports.append(live_soak(source, minutes, weights, hop_s, pulse=pulse))
                finally:
                    pulse.stop()
        else:
            reports.append(live_soak(source, minutes, weights, hop_s))
        print(reports[-1].line(), flush=True)
    return reports
