"""Build the committed test bags from sounds45 recordings (deterministic: same inputs, same bags).

Two scenes of about 30 s each: three target sounds (water splash, clanking dishes, hammer on metal)
among other everyday sounds, separated by short pauses, over a quiet room-noise floor, at 16 kHz
mono int16, 1600-sample (0.1 s) messages. Each scene is written in both audio_common layouts and both
storages are covered (scene 1: stamped/mcap + raw/sqlite3; scene 2: raw/mcap + stamped/sqlite3),
with its labelled events as JSON.

The test scenes use recordings 03/04 only; `--dev` writes the same kind of scenes from recordings
01/02 (used to choose prompt wordings and thresholds, never committed), so the committed bags are
held out from everything that was tuned. Rewriting them today gives the same audio within one int16
step (the resampler changed since they were made), so the committed files were left as they are.

`gen1` (41 s, stamped/mcap) is the generalisation bag: sfx_pool clips (CC0 / CC BY 3.0, credits in
`gen1.sources.json`) of four classes the default model never trained on — doorbell, door closing,
thunder, flowing water — among five other sounds, for `test/bags/generalisation.yaml` (prompts only).
`gen1n` is the same scene with the robot's own noise added (`self_noise.py`: fan, motor whine, mains hum
at -46 dBFS, synthetic), for the adaptive background (test/bags/test_self_noise.py).

    .venv/bin/python test/bags/make_bags.py            # rewrites test/bags/data/ (scene1/2 and gen1)
    .venv/bin/python test/bags/make_bags.py --dev OUT  # dev scenes into OUT
    .venv/bin/python test/bags/make_bags.py --only gen1n  # just these scenes
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
from clap_ros.bag_writer import AudioBagWriter  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from self_noise import SELF_NOISE_DBFS, self_noise  # noqa: E402

SOUNDS45 = ROOT.parent / "shared" / "data" / "sounds45"
SFX_POOL = ROOT.parent / "shared" / "data" / "sfx_pool"
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
# The generalisation scene: sfx_pool classes that the shipped default model never trained on
# (`training/build_default.py` HELD_OUT_FOR_BAG), CC0 / CC BY clips only (attribution in
# gen1.sources.json, written beside the bag). Class → predicate name for the targets.
GEN_TARGETS = {"doorbell ringing": "doorbell", "door closing": "door_closed", "thunder": "thunder",
               "flowing water": "water_flowing"}
GEN_SCENE: list[tuple[str, str]] = [
    ("bird singing", "antummt_mod_sounds/bird_02"), ("doorbell ringing", "antummt_mod_sounds/doorbell_01"),
    ("scraping", "antummt_mod_sounds/scrape_01"), ("flowing water", "minetest_data/env_sounds_water_1"),
    ("cow mooing", "antummt_mod_sounds/cow_moo_02"), ("door closing", "antummt_mod_sounds/door_close_01"),
    ("rustling leaves", "antummt_mod_sounds/leaves_01"), ("thunder", "antummt_mod_sounds/thunder_01"),
    ("chicken", "antummt_mod_sounds/chicken_01"), ("doorbell ringing", "antummt_mod_sounds/doorbell_02"),
    ("door closing", "antummt_mod_sounds/door_close_03"),
]
GEN_LEVEL_DBFS = -28.0  # sfx_pool levels are arbitrary: each clip at a normal-speech-like level
# scene → [(layout, storage)]
BAGS = {"scene1": [("stamped", "mcap"), ("raw", "sqlite3")], "scene2": [("raw", "mcap"), ("stamped", "sqlite3")],
        "dev1": [("stamped", "mcap")], "dev2": [("stamped", "mcap")], "gen1": [("stamped", "mcap")],
        "gen1n": [("stamped", "mcap")]}
SELF_NOISE_SEED = 46
GEN_NOISE_LEAD_IN_S = 10.0  # the robot's noise alone first (the node runs before anything happens)


def scene_audio(clips: list[tuple[str, Path]], targets: dict[str, str], seed: int,
                level_dbfs: float | None = None, lead_in_s: float = PAUSE_S) -> tuple[np.ndarray, dict]:
    """The scene's samples and its labelled events (targets only), times from the first sample.
    `clips`: (class, file) in playing order; `level_dbfs`: set each clip's RMS level (None: keep);
    `lead_in_s`: room noise alone before the first clip."""
    pause = np.zeros(int(PAUSE_S * RATE), np.float32)
    parts, events, sources, t = [np.zeros(int(lead_in_s * RATE), np.float32)], [], [], lead_in_s
    for cls, path in clips:
        wave, sr = load_audio(path)
        wave = resample(wave, sr, RATE)
        if level_dbfs is not None:
            wave = wave * (10 ** (level_dbfs / 20) / np.sqrt(np.mean(wave ** 2)))
        dur = len(wave) / RATE
        sources.append({"start": round(t, 4), "end": round(t + dur, 4), "class": cls,
                        "file": f"{path.parent.name}/{path.name}"})
        if cls in targets:
            events.append({"start": round(t, 4), "end": round(t + dur, 4), "predicate": targets[cls]})
        parts += [wave, pause]
        t += dur + PAUSE_S
    audio = np.concatenate(parts)
    rng = np.random.default_rng(seed)
    noise = lfilter([1.0], [1.0, -0.95], rng.standard_normal(len(audio)))  # low-heavy room noise
    noise *= 10 ** (NOISE_DBFS / 20) / np.sqrt(np.mean(noise**2))
    return (audio + noise).astype(np.float32), {"events": events, "sources": sources}


def sounds45_clips(clips: list[tuple[str, str]], sounds45: Path) -> list[tuple[str, Path]]:
    return [(cls, next((sounds45 / cls).glob(f"{stem}.*"))) for cls, stem in clips]


def gen_clips(sfx_pool: Path) -> tuple[list[tuple[str, Path]], list[dict]]:
    """The generalisation scene's files and their licence rows from sfx_pool's labels.csv."""
    import csv

    with open(sfx_pool / "labels.csv", newline="", encoding="utf-8") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    clips, credits = [], []
    for cls, stem in GEN_SCENE:
        row = rows[f"audio/{stem}.flac"]
        assert row["label"] == cls and row["licence"].startswith(("CC0", "CC BY ")), row
        clips.append((cls, sfx_pool / row["path"]))
        credits.append({k: row[k] for k in ("path", "label", "original_name", "source", "licence", "author")})
    return clips, credits


def write_scene(name: str, audio: np.ndarray, labels: dict, out: Path) -> None:
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
    ap.add_argument("--only", nargs="+", help="write only these scenes (e.g. gen1n)")
    ap.add_argument("--sounds45", type=Path, default=SOUNDS45)
    ap.add_argument("--sfx-pool", type=Path, default=SFX_POOL)
    args = ap.parse_args()
    scenes, out = (DEV_SCENES, args.dev) if args.dev else (TEST_SCENES, DATA)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only or [*scenes, "gen1", "gen1n"])
    for seed, (name, clips) in enumerate(scenes.items()):
        if name in wanted:
            write_scene(name, *scene_audio(sounds45_clips(clips, args.sounds45), TARGETS, seed), out)
    if not args.dev and wanted & {"gen1", "gen1n"}:
        write_gen(args.sfx_pool, out, wanted)
    return 0


def gen_noise_scene(sfx_pool: Path, noisy: bool = True) -> tuple[np.ndarray, dict]:
    """gen1's clips after a lead-in, over room noise plus (`noisy`) the robot's own noise: the gen1n
    bag; without it, its clean twin (bench/self_noise.py compares the two)."""
    audio, labels = scene_audio(gen_clips(sfx_pool)[0], GEN_TARGETS, seed=7, level_dbfs=GEN_LEVEL_DBFS,
                                lead_in_s=GEN_NOISE_LEAD_IN_S)
    return (audio + self_noise(len(audio), RATE, SELF_NOISE_SEED) if noisy else audio), labels


def write_gen(sfx_pool: Path, out: Path, wanted: set[str]) -> None:
    """gen1 and its self-noise twin gen1n (a lead-in, then the same clips, plus fan/motor/mains noise)."""
    clips, credits = gen_clips(sfx_pool)
    if "gen1" in wanted:
        write_scene("gen1", *scene_audio(clips, GEN_TARGETS, seed=7, level_dbfs=GEN_LEVEL_DBFS), out)
    if "gen1n" in wanted:
        write_scene("gen1n", *gen_noise_scene(sfx_pool), out)
    for name in wanted & {"gen1", "gen1n"}:
        extra = (f" Plus synthetic robot self-noise (test/bags/self_noise.py, seed {SELF_NOISE_SEED}) at "
                 f"{SELF_NOISE_DBFS} dBFS RMS, after {GEN_NOISE_LEAD_IN_S:g} s of noise alone." if name == "gen1n" else "")
        (out / f"{name}.sources.json").write_text(json.dumps(
            {"note": f"Audio of the {name} bag: these sfx_pool clips, converted to 16 kHz mono int16, level "
                     f"set to {GEN_LEVEL_DBFS} dBFS RMS, mixed over synthetic room noise.{extra} Each clip keeps "
                     "its licence (CC0 1.0 or CC BY 3.0, https://creativecommons.org/licenses/by/3.0/); "
                     "credit: the author column.", "clips": credits}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
