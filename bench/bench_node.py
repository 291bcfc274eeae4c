"""Benchmark the live node: sustainable hop, latency end-of-window → message, CPU share, memory.

For each model and hop, the real node (`python -m clap_ros.predicate_node`, source=topic) runs in
its own process; this script publishes real sounds45 recordings on its audio topic *in real time*,
stamped like a microphone (the stamp of a chunk's last sample is the wall-clock time it is sent),
and receives /audio_predicates over DDS. Per run it prints:

- windows received / expected (a hop is sustainable when none is missing, the node reports no
  overruns, and latency does not grow over the run, i.e. inference keeps up with the audio);
- latency from the end of a window (its last sample sent) to its message arriving: p50 / p95 / max;
- CPU share of the node process while streaming (100 % = one core; these machines have 2);
- resident memory after streaming (VmRSS) and its peak (VmHWM, which includes start-up).

Usage:  python bench/bench_node.py [--seconds 20] [--models default,msclap-random] [--hops 1,0.5,0.25]
                                   [--runtimes auto,torch]
`--runtimes` sets the node's `audio_runtime` parameter (auto: ONNX Runtime for CNN14, torch for
the default model).
`msclap-random` is MS-CLAP 2022 (CNN14 + BERT-base) with random weights in the official layout,
written once to a temporary file: the size and speed of the real thing, offline. Likewise
`msclap2023-random` (HTS-AT + GPT-2, 7-s windows) and `laion-random` (transformers ClapModel at
laion/clap-htsat-unfused's size, 10-s windows).
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOUNDS45 = ROOT.parent / "shared" / "data" / "sounds45"
CLIPS = ("Vacuum/Vacuum01.flac", "BicycleBell/bikeBell01.flac", "WaterSplash/WaterSplashing02.flac",
         "Chainsaw/chainsaw01.flac", "CrumplingPaper/crumplingPaper01.flac")
RATE = 16000
CHUNK_S = 0.02  # 20-ms chunks, like a microphone callback


@dataclass
class RunResult:
    model: str
    hop: float
    expected: int
    received: int
    overruns: int
    latencies: list[float]
    cpu_share: float
    rss_mb: float
    peak_mb: float
    inference_s: list[float]

    @property
    def sustainable(self) -> bool:
        if self.received < self.expected or self.overruns or not self.latencies:  # a window lost
            return False
        half = len(self.latencies) // 2
        growing = np.median(self.latencies[half:]) > np.median(self.latencies[:half]) + self.hop
        return not growing and max(self.latencies) < 2 * self.hop + 1.0

    def line(self) -> str:
        lat = np.array(self.latencies) * 1000 if self.latencies else np.array([np.nan])
        return (f"{self.model:20s} hop {self.hop:4.2f} s  windows {self.received:3d}/{self.expected:3d}  "
                f"overruns {self.overruns}  latency p50 {np.percentile(lat, 50):6.1f} ms  "
                f"p95 {np.percentile(lat, 95):6.1f} ms  max {lat.max():7.1f} ms  CPU {self.cpu_share * 100:5.1f} %  "
                f"RSS {self.rss_mb:6.0f} MB (peak {self.peak_mb:6.0f} MB)  "
                f"inference p50 {np.median(self.inference_s or [np.nan]) * 1000:6.1f} ms  "
                f"{'sustainable' if self.sustainable else 'NOT sustainable'}")


def _audio(seconds: float) -> np.ndarray:
    from clap_core.audio_io import load_audio, resample

    parts = []
    for rel in CLIPS:
        wave, sr = load_audio(SOUNDS45 / rel)
        parts.append(resample(wave, sr, RATE))
    audio = np.concatenate(parts)
    reps = int(np.ceil(seconds * RATE / len(audio)))
    return np.tile(audio, reps)[: int(seconds * RATE)]


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_mem_mb(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def run_once(weights: str, label: str, hop: float, seconds: float, config: Path, runtime: str = "auto",
             window: float = 5.0) -> RunResult:
    import rclpy
    from audio_common_msgs.msg import AudioStamped
    from clap_ros_interfaces.msg import AudioPredicates
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data

    ns = f"/bench_{os.getpid()}_{random.randrange(1 << 30)}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clap_ros.predicate_node", "--ros-args", "-r", f"__ns:={ns}",
         "-p", f"config:={config}", "-p", f"weights:={weights}", "-p", "source:=topic", "-p", f"hop_s:={hop}",
         "-p", f"audio_runtime:={runtime}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(f"bench_client_{os.getpid()}", context=ctx)
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    received: list[tuple[float, float]] = []  # (arrival wall time, window end)
    inference: list[float] = []  # the node's own inference time per window
    overruns = [0]

    def on_preds(msg) -> None:
        received.append((time.time(), msg.window_end.sec + msg.window_end.nanosec * 1e-9))
        inference.append(float(msg.inference_s))

    def on_diag(msg) -> None:
        for st in msg.status:
            if st.name.endswith(": audio source") and st.hardware_id.startswith(ns):
                overruns[0] = max(overruns[0], int({kv.key: kv.value for kv in st.values}["overruns"]))

    node.create_subscription(AudioPredicates, f"{ns}/audio_predicates", on_preds, 1000)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 100)
    pub = node.create_publisher(AudioStamped, f"{ns}/audio", qos_profile_sensor_data)
    try:
        deadline = time.monotonic() + 300
        while node.count_publishers(f"{ns}/audio_predicates") == 0 or pub.get_subscription_count() == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{label}: node did not come up (exit {proc.poll()})")
            ex.spin_once(timeout_sec=0.1)
        time.sleep(2.0)  # let the subscription match and the node settle after loading
        audio = _audio(seconds + 0.1)  # +0.1 s: resampling holds back a few ms of the last window
        n = int(CHUNK_S * RATE)
        cpu0, wall0 = _proc_cpu_s(proc.pid), time.time()
        for i in range(0, len(audio), n):
            due = wall0 + (i + n) / RATE  # the chunk's last sample is "captured" now
            while (now := time.time()) < due:
                ex.spin_once(timeout_sec=max(0.0, min(0.005, due - now)))
            msg = AudioStamped()
            t_first = due - n / RATE
            ns_ = int(round(t_first * 1e9))
            msg.header.stamp.sec, msg.header.stamp.nanosec = ns_ // 1_000_000_000, ns_ % 1_000_000_000
            msg.audio.info.format, msg.audio.info.channels, msg.audio.info.rate = 8, 1, RATE
            msg.audio.info.chunk = n
            msg.audio.audio_data.int16_data = (np.clip(audio[i:i + n], -1, 1) * 32767).astype(np.int16)
            pub.publish(msg)
        end = time.time() + max(3.0, 3 * hop)
        while time.time() < end:
            ex.spin_once(timeout_sec=0.05)
        cpu_share = (_proc_cpu_s(proc.pid) - cpu0) / (time.time() - wall0)
        rss, peak = _proc_mem_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        ex.shutdown()
        node.destroy_node()
        ctx.try_shutdown()
    expected = int((seconds - window) / hop + 1e-9) + 1
    latencies = [arrival - t_end for arrival, t_end in received]
    return RunResult(label, hop, expected, len(received), overruns[0], latencies, cpu_share, rss, peak, inference)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="audio streamed per run (real time)")
    ap.add_argument("--models", default="default,msclap-random")
    ap.add_argument("--hops", default="1.0,0.5,0.25")
    ap.add_argument("--runtimes", default="auto", help="node audio_runtime values to compare (auto, onnx, torch)")
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "predicates.yaml")
    args = ap.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    hops = [float(h) for h in args.hops.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for label in args.models.split(","):
            weights, window = _random_weights(label, Path(tmp))
            for runtime in args.runtimes.split(","):
                name = label if runtime == "auto" else f"{label}/{runtime}"
                for hop in hops:
                    print(run_once(weights, name, hop, args.seconds, args.config, runtime, window).line(), flush=True)


def _random_weights(label: str, tmp: Path) -> tuple[str, float]:
    """(weights for the node, its window = the model's clip length) for a `--models` label."""
    sys.path.insert(0, str(ROOT / "test"))
    from references.msclap_reference import write_msclap_checkpoint, write_random_2023_checkpoint, write_random_laion_folder

    ranks = ROOT / ".cache" / "gpt2" / "gpt2.tiktoken"  # fetched by scripts/setup.sh
    os.environ["CLAP_WEIGHTS_DIR"] = str(tmp)  # the node finds GPT-2's tokenizer in tmp/gpt2
    if label == "msclap-random":
        return str(write_msclap_checkpoint(tmp / "CLAP_weights_2022.pth", seed=0)), 5.0
    if label == "msclap2023-random":
        from clap_core.gpt2_bpe import write_tokenizer_files

        path = tmp / "CLAP_weights_2023.pth"
        write_random_2023_checkpoint(path, write_tokenizer_files(ranks, tmp / "gpt2"))
        return str(path), 7.0
    if label == "laion-random":
        write_random_laion_folder(tmp / "laion", ranks, small=False)
        return str(tmp / "laion"), 10.0
    return label, 5.0


if __name__ == "__main__":
    main()
