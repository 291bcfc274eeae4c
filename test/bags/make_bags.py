"""Build the committed test bags from sounds45 recordings (deterministic: same inputs, same bags).

Two scenes of about 30 s each: three target sounds (water splash, clanking dishes, hammer on metal)
among other everyday sounds, separated by short pauses, over a quiet room-noise floor, at 16 kHz
mono int16, 1600-sample (0.1 s) messages. Each scene is written in both audio_common layouts and both
storages are covered (scene 1: stamped/mcap + raw/sqlite3; scene 2: raw/mcap + stamped/sqlite3),
with its labelled events as JSON.

The test scenes use recordings 03/04 only; `--dev` writes the same kind of scenes from recordings
01/02 (used to choose prompt wordings and thresholds, never committed), so the committed bags are
held out from everything that was tuned.

    .venv/bin/python test/bags/make_bags.py            # rewrites test/bags/data/
    .venv/bin/python test/bags/make_bags.py --dev OUT  # dev scenes into OUT
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from clap_core.audio_io import load_audio, resample  # noqa: E402
from clap_ros.bag_io import AudioBagWriter  # noqa: E402

SOUNDS45 = ROOT.parent / "shared" / "data" / "sounds45"
DATA = Path(__file__).resolve().parent / "data"
RATE = 16000
CHUNK = 1600  # 0.1 s per message (also packs sqlite3 pages well)
PAUSE_S = 1.0
NOISE_DBFS = -60.0
T0 = 1.7e9  # audio time of the first sample (a plausible ROS stamp)
TARGETS = {"WaterSplash": "water_splash", "ClankingDishes": "clanking_dishes", "HammerMetal": "hammer_metal"}

# (class, recording file) in playing order
TEST_SCENES: dict[str, list[tuple[str, str]]] = {
    "scene1": [("WaterSplash", "WaterSplashing03"), ("FootstepsInPebbles", "stepPebbles03"),
               ("ClankingDishes", "clankingDishes03"), ("BicycleBell", "bikeBell03"),
               ("HammerMetal", "HammerMetal03"), ("CrumplingPaper", "crumplingPaper03")],
    "scene2": [("HammerMetal", "HammerMetal04"), ("ChoppingVegetables", "chopVeg03"),
               ("WaterSplash", "WaterSplashing04"), ("CoffeeBeanGrinder", "coffeeBeanGrinder03"),
               ("ClankingDishes", "clankingDishes04"), ("Scissors", "scissors03")],
}
DEV_SCENES: dict[str, list[tuple[str, str]]] = {
    "dev1": [("ClankingDishes", "clankingDishes01"), ("Ratchet", "ratchet01"),
             ("WaterSplash", "WaterSplashing01"), ("NailsFromBox", "nailBox01"),
             ("HammerMetal", "HammerMetal01"), ("HandsRubbing", "handsRub01")],
    "dev2": [("WaterSplash", "WaterSplashing02"), ("Shovel", "shovel01"), ("HammerMetal", "HammerMetal02"),
             ("SprayCanShake", "SprayCanShake01"), ("ClankingDishes", "clankingDishes02"),
             ("WalkingLeaves", "walkLeaves01")],
}
# scene → [(layout, storage)]
BAGS = {"scene1": [("stamped", "mcap"), ("raw", "sqlite3")], "scene2": [("raw", "mcap"), ("stamped", "sqlite3")],
        "dev1": [("stamped", "mcap")], "dev2": [("stamped", "mcap")]}


def scene_audio(clips: list[tuple[str, str]], sounds45: Path, seed: int) -> tuple[np.ndarray, dict]:
    """The scene's samples and its labelled events (targets only), times from the first sample."""
    pause = np.zeros(int(PAUSE_S * RATE), np.float32)
    parts, events, sources, t = [pause], [], [], PAUSE_S
    for cls, stem in clips:
        path = next((sounds45 / cls).glob(f"{stem}.*"))
        wave, sr = load_audio(path)
        wave = resample(wave, sr, RATE)
        dur = len(wave) / RATE
        sources.append({"start": round(t, 4), "end": round(t + dur, 4), "class": cls,
                        "file": f"{cls}/{path.name}"})
        if cls in TARGETS:
            events.append({"start": round(t, 4), "end": round(t + dur, 4), "predicate": TARGETS[cls]})
        parts += [wave, pause]
        t += dur + PAUSE_S
    audio = np.concatenate(parts)
    rng = np.random.default_rng(seed)
    noise = lfilter([1.0], [1.0, -0.95], rng.standard_normal(len(audio)))  # low-heavy room noise
    noise *= 10 ** (NOISE_DBFS / 20) / np.sqrt(np.mean(noise**2))
    return (audio + noise).astype(np.float32), {"events": events, "sources": sources}


def write_scene(name: str, clips: list[tuple[str, str]], out: Path, sounds45: Path, seed: int) -> None:
    audio, labels = scene_audio(clips, sounds45, seed)
    for layout, storage in BAGS[name]:
        bag = out / f"{name}_{layout}_{storage}"
        if bag.exists():
            shutil.rmtree(bag)
        with AudioBagWriter(bag, layout, storage) as writer:
            for i in range(0, len(audio), CHUNK):
                writer.write(audio[i:i + CHUNK], RATE, T0 + i / RATE)
    labels["duration_s"] = round(len(audio) / RATE, 4)
    (out / f"{name}.labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    print(f"{name}: {len(audio) / RATE:.1f} s, {len(labels['events'])} labelled events")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, help="write the dev scenes (recordings 01/02) into this folder instead")
    ap.add_argument("--sounds45", type=Path, default=SOUNDS45)
    args = ap.parse_args()
    scenes, out = (DEV_SCENES, args.dev) if args.dev else (TEST_SCENES, DATA)
    out.mkdir(parents=True, exist_ok=True)
    for seed, (name, clips) in enumerate(scenes.items()):
        write_scene(name, clips, out, args.sounds45, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
