"""Predicates over the robot's own noise: per-predicate F1 per window, clean vs self-noise, with the
adaptive background off and on, for the shipped default model and the untrained label-space baseline.

    python bench/self_noise.py                      # gen1n (self-noise) beside its clean twin, and gen1
    python bench/self_noise.py --bag DIR LABELS YAML --self-noise -46   # any bag, noise mixed in here

Per window, a predicate counts as *on* when its score reaches its threshold (events too: the
engine's event value is true only in the window that fires, which says nothing about the other
windows that hold the sound); truth and don't-care windows as `clap-predicates score` has them
(clap_core/predicates/metrics.py). Events: detected / labelled, and false alarms, from the engine's
own values. Prompts only; 5-s windows, hop 0.5 s.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test" / "bags"))

from clap_core import load_torch_model  # noqa: E402
from clap_core.torch_runtime import TorchInferenceModel  # noqa: E402
from clap_core.predicates import PredicateEngine, load_predicate_config  # noqa: E402
from clap_core.predicates.background import AdaptiveBackgroundConfig  # noqa: E402
from clap_core.predicates.metrics import macro_f1, read_labels, score_timeline  # noqa: E402
from clap_ros.replay import open_source  # noqa: E402
from make_bags import SFX_POOL, gen_noise_scene  # noqa: E402
from self_noise import self_noise  # noqa: E402
from training.build_default import label_space_model  # noqa: E402

BAGS = ROOT / "test" / "bags"
CHUNK_S = 0.1


def bag_audio(path: Path) -> tuple[np.ndarray, int]:
    chunks = list(open_source(path).chunks)
    return np.concatenate([c.samples for c in chunks]).astype(np.float32), chunks[0].sample_rate


def room_noise(seconds: float, rate: int) -> np.ndarray:
    """Low-heavy room noise at -60 dBFS, as the bag scenes have under their clips."""
    noise = lfilter([1.0], [1.0, -0.95], np.random.default_rng(99).standard_normal(int(seconds * rate)))
    return (noise * 10 ** (-60 / 20) / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)).astype(np.float32) \
        if len(noise) else np.zeros(0, np.float32)


def run(model, cfg, audio: np.ndarray, rate: int) -> tuple[list[dict], list[dict]]:
    """(timeline with value = score ≥ threshold, timeline with the engine's own values)."""
    engine = PredicateEngine(model, cfg, window_s=5.0, hop_s=0.5)
    step = int(CHUNK_S * rate)
    results = engine.push_many((audio[i:i + step], rate, i / rate) for i in range(0, len(audio), step))
    results += engine.flush()
    engine_tl = [r.to_json() for r in results]
    window_tl = [dict(row, predicates={n: dict(p, value=p["score"] is not None and p["score"] >= p["threshold"])
                                       for n, p in row["predicates"].items()}) for row in engine_tl]
    return window_tl, engine_tl


def line(label: str, window_tl: list[dict], engine_tl: list[dict], labels) -> str:
    per_window = score_timeline(window_tl, labels)
    engine = {s.name: s for s in score_timeline(engine_tl, labels)}
    cells = [f"{s.name} {s.f1:.2f} ({engine[s.name].detected}/{s.events}, FA {engine[s.name].false_alarms})"
             for s in per_window]
    return f"{label:<34} macro {macro_f1(per_window):.2f} | " + "; ".join(cells)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bag", nargs=3, action="append", metavar=("DIR", "LABELS", "YAML"),
                    help="score this bag instead of gen1/gen1n")
    ap.add_argument("--self-noise", type=float, help="also mix self-noise at this level (dBFS) into --bag audio")
    ap.add_argument("--sfx-pool", type=Path, default=SFX_POOL, help="for gen1n's clean twin")
    ap.add_argument("--strength", type=float, nargs="+", default=[AdaptiveBackgroundConfig.strength])
    ap.add_argument("--lead-in", type=float, default=0.0,
                    help="prepend this many seconds of room noise to --bag audio (the node runs before the scene)")
    ap.add_argument("--rate", type=float, default=AdaptiveBackgroundConfig.rate)
    ap.add_argument("--warmup", type=int, default=AdaptiveBackgroundConfig.warmup_windows)
    args = ap.parse_args()
    scenes = []  # (name, audio, rate, labels, cfg)
    if args.bag:
        for d, labels, yaml in args.bag:
            audio, rate = bag_audio(Path(d))
            audio = np.concatenate([room_noise(args.lead_in, rate), audio])
            events = [dataclasses.replace(e, start=e.start + args.lead_in, end=e.end + args.lead_in)
                      for e in read_labels(labels)]
            scenes.append((Path(d).name, audio, rate, events, load_predicate_config(yaml)))
            if args.self_noise is not None:
                noisy = audio + self_noise(len(audio), rate, seed=46, level_dbfs=args.self_noise)
                scenes.append((f"{Path(d).name}+noise{args.self_noise:g}", noisy, rate, events,
                               load_predicate_config(yaml)))
    else:
        cfg = load_predicate_config(BAGS / "generalisation.yaml")
        clean, _ = gen_noise_scene(args.sfx_pool, noisy=False)
        scenes += [("gen1", *bag_audio(BAGS / "data" / "gen1_stamped_mcap"),
                    read_labels(BAGS / "data" / "gen1.labels.json"), cfg),
                   ("gen1n clean twin", clean, 16000, read_labels(BAGS / "data" / "gen1n.labels.json"), cfg),
                   ("gen1n", *bag_audio(BAGS / "data" / "gen1n_stamped_mcap"),
                    read_labels(BAGS / "data" / "gen1n.labels.json"), cfg)]
    default = load_torch_model("default")
    print(f"adaptive background: rate {args.rate}, warm-up {args.warmup} windows; lead-in {args.lead_in} s")
    settings = [AdaptiveBackgroundConfig()] + [AdaptiveBackgroundConfig(True, args.rate, args.warmup, s)
                                              for s in args.strength]
    for model_name, model in (("default", TorchInferenceModel(default)),
                              ("label-space baseline", TorchInferenceModel(label_space_model(default)))):
        for name, audio, rate, labels, cfg in scenes:
            for bg in settings:
                tls = run(model, dataclasses.replace(cfg, adaptive_background=bg), audio, rate)
                tag = f"{model_name}, {name}, {f'adaptive {bg.strength:g}' if bg.enabled else 'fixed'}"
                print(line(tag, *tls, labels), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
