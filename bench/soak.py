"""Engine soak: hours of real audio through the `PredicateEngine`, as fast as the CPU allows.

    .venv/bin/python bench/soak.py --hours 10            # the long run quoted in docs/reliability.md
    .venv/bin/python bench/soak.py --hours 0.1 --json    # a few seconds
    .venv/bin/python bench/soak.py --live --minutes 20   # the node itself, in real time: bench/soak_live.py

The stream loops the sounds45 recordings (read from ../shared/data), mixed over room noise, with
faults every few minutes: 2 s of digital silence, a clipping burst (×30, limited to full scale) and a
50-ms NaN burst. Chunks of 0.1 s at 16 kHz carry audio-time stamps like a microphone driver's.
Checked and printed: every window the stream can hold is produced exactly once (count and start
times on an exact hop grid), every window that holds NaN samples is skipped and no other, no
exception escapes, and resident memory (RSS) at the start (after the first 10 % of the run) and
at the end.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clap_core.audio_io import load_audio, resample  # noqa: E402
from clap_core.predicates import PredicateEngine, load_predicate_config  # noqa: E402

SOUNDS45 = ROOT.parent / "shared" / "data" / "sounds45"
CONFIG = ROOT / "config" / "predicates.yaml"
RATE = 16000
CHUNK_S = 0.1
FAULT_EVERY_S = 180.0  # one silence + clipping + NaN burst per 3 minutes of audio
NAN_S, SILENCE_S, CLIP_S = 0.05, 2.0, 0.5


@dataclass
class SoakReport:
    audio_hours: float
    wall_s: float
    windows: int
    windows_expected: int
    hop_grid_exact: bool
    skipped: int
    skipped_expected: int
    skipped_wrong: int  # skipped without NaN, or NaN and not skipped
    rss_start_mb: float
    rss_end_mb: float
    rss_growth_pct: float
    exceptions: int

    @property
    def ok(self) -> bool:
        return (self.windows == self.windows_expected and self.hop_grid_exact and self.skipped_wrong == 0
                and self.skipped == self.skipped_expected and self.exceptions == 0)


def rss_mb() -> float:
    """Resident set size of this process (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def recordings(limit: int = 40) -> list[np.ndarray]:
    """The first `limit` sounds45 recordings at the stream's rate."""
    rows = (SOUNDS45 / "labels.csv").read_text().splitlines()[1:limit + 1]
    return [resample(*load_audio(SOUNDS45 / row.split(",")[0]), RATE) for row in rows]


def stream(hours: float, clips: list[np.ndarray], seed: int = 0) -> Iterator[tuple[np.ndarray, float, bool]]:
    """(chunk, audio time of its first sample, holds NaN) for `hours` of audio, generated lazily so
    a 10-hour run never holds more than a few seconds in memory."""
    rng = np.random.default_rng(seed)
    n_total = int(round(hours * 3600 * RATE))
    chunk = int(round(CHUNK_S * RATE))
    pending = np.zeros(0, np.float32)
    pos, k = 0, 0
    while pos < n_total:
        while len(pending) < chunk:
            pending = np.concatenate([pending, _segment(clips[k % len(clips)], rng)])
            k += 1
        x, pending = pending[:chunk].copy(), pending[chunk:]
        x = x[:n_total - pos]
        x = _faults(x, pos)
        yield x, pos / RATE, bool(np.isnan(x).any())
        pos += len(x)


def _segment(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One recording at a random level over room noise, then a short pause of noise."""
    gain = 10 ** (rng.uniform(-35, -10) / 20) / max(float(np.sqrt(np.mean(clip ** 2))), 1e-6)
    pause = int(rng.uniform(0.2, 2.0) * RATE)
    x = np.concatenate([clip * gain, np.zeros(pause, np.float32)])
    return (x + 10 ** (-55 / 20) * rng.standard_normal(len(x))).astype(np.float32)


def _faults(x: np.ndarray, start: int) -> np.ndarray:
    """Silence, clipping and NaN at fixed offsets inside every `FAULT_EVERY_S` of audio."""
    period = int(FAULT_EVERY_S * RATE)
    idx = (start + np.arange(len(x))) % period
    silence = (idx >= 30 * RATE) & (idx < (30 + SILENCE_S) * RATE)
    clip = (idx >= 60 * RATE) & (idx < (60 + CLIP_S) * RATE)
    nan = (idx >= 90 * RATE) & (idx < (90 + NAN_S) * RATE)
    x = np.where(silence, np.float32(0.0), x)
    x = np.where(clip, np.clip(x * 30.0, -1.0, 1.0), x)
    return np.where(nan, np.float32(np.nan), x).astype(np.float32)


def expected_windows(n_in: int, model_rate: int, window_s: float, hop_s: float) -> int:
    n_out = math.ceil(n_in * model_rate / RATE)
    w, h = round(window_s * model_rate), round(hop_s * model_rate)
    return 0 if n_out < w else (n_out - w) // h + 1


def soak(hours: float, weights: str = "default", window_s: float = 5.0, hop_s: float = 0.5,
         config: Path = CONFIG) -> SoakReport:
    from clap_core import load_model

    model = load_model(weights)
    engine = PredicateEngine(model, load_predicate_config(config), window_s, hop_s)
    clips = recordings()
    nan_spans: list[tuple[float, float]] = []
    starts: list[float] = []
    skipped = wrong = exceptions = 0
    n_in = 0
    rss_start = None
    total_chunks = int(round(hours * 3600 / CHUNK_S))
    t0 = time.perf_counter()
    results_iter: list = []
    for i, (x, t, has_nan) in enumerate(stream(hours, clips)):
        if has_nan:
            bad = np.flatnonzero(np.isnan(x))
            nan_spans.append((t + bad[0] / RATE, t + (bad[-1] + 1) / RATE))
        try:
            results_iter = engine.push(x, RATE, t)
        except Exception:  # noqa: BLE001 - counted: a soak reports every escape, it does not stop
            exceptions += 1
            results_iter = []
        n_in += len(x)
        for r in results_iter:
            starts.append(r.t_start)
            holds_nan = any(a < r.t_end and b > r.t_start for a, b in nan_spans[-3:])
            skipped += r.skipped
            wrong += r.skipped != holds_nan
        if rss_start is None and i >= total_chunks // 10:
            rss_start = rss_mb()
    for r in engine.flush():
        starts.append(r.t_start)
        holds_nan = any(a < r.t_end and b > r.t_start for a, b in nan_spans[-3:])
        skipped += r.skipped
        wrong += r.skipped != holds_nan
    wall = time.perf_counter() - t0
    rss_end = rss_mb()
    rss_start = rss_start or rss_end
    grid = np.asarray(starts) / hop_s
    expected_skips = _windows_touching(nan_spans, window_s, hop_s, len(starts))
    return SoakReport(audio_hours=round(n_in / RATE / 3600, 4), wall_s=round(wall, 1), windows=len(starts),
                      windows_expected=expected_windows(n_in, int(model.sample_rate), window_s, hop_s),
                      hop_grid_exact=bool(len(grid) == 0 or np.allclose(grid, np.round(grid), atol=1e-6)
                                          and np.all(np.diff(np.round(grid)) == 1) and round(grid[0]) == 0),
                      skipped=skipped, skipped_expected=expected_skips, skipped_wrong=wrong,
                      rss_start_mb=round(rss_start, 1), rss_end_mb=round(rss_end, 1),
                      rss_growth_pct=round(100 * (rss_end - rss_start) / rss_start, 2), exceptions=exceptions)


def _windows_touching(spans: list[tuple[float, float]], window_s: float, hop_s: float, n: int) -> int:
    """How many of the `n` windows on the hop grid overlap at least one NaN span."""
    hit = set()
    for a, b in spans:
        first = max(0, math.floor((a - window_s) / hop_s) + 1)
        last = min(n - 1, math.ceil(b / hop_s) - 1)
        hit.update(range(first, last + 1))
    return len(hit)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=10.0)
    ap.add_argument("--weights", default="default")
    ap.add_argument("--hop", type=float, default=0.5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--live", action="store_true", help="run the node over DDS in real time instead")
    ap.add_argument("--minutes", type=float, default=20.0, help="--live: real-time minutes per source")
    ap.add_argument("--sources", default="topic,microphone", help="--live: topic, microphone or both")
    args = ap.parse_args(argv)
    if args.live:
        return _live(args)
    report = soak(args.hours, args.weights, hop_s=args.hop)
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}))
    else:
        for key, value in asdict(report).items():
            print(f"{key:>18}: {value}")
        print(f"{'ok':>18}: {report.ok}")
    return 0 if report.ok else 1


def _live(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from soak_live import run

    reports = run(args.minutes, args.sources.split(","), args.weights, args.hop)
    if args.json:
        print(json.dumps([{**asdict(r), "ok": r.ok} for r in reports]))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
