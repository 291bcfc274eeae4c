"""`clap-predicates`: replay, record from audio, score, plot and calibrate predicate timelines.

Each subcommand is a pair of small functions (its arguments, its action); all of them turn an
expected failure into one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

from clap_core.errors import ClapError
from clap_core.protocol import InferenceModel


def _eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# -- replay -------------------------------------------------------------------------------------
def add_replay(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="rosbag2 bag folder (sqlite3 or mcap) or an audio file")
    p.add_argument("--config", required=True, help="predicates YAML")
    add_model_arguments(p)
    p.add_argument("--window", type=float, default=0.0,
                   help="window length in seconds (default 0: the model's clip length)")
    p.add_argument("--hop", type=float, default=0.5, help="hop in seconds (default 0.5, as the node)")
    p.add_argument("--topic", help="audio topic, when the bag holds several")
    p.add_argument("--sample-rate", type=int, default=0,
                   help="raw-layout bags recorded without AudioInfo: the rate to assume (S16LE)")
    p.add_argument("--channels", type=int, default=1, help="with --sample-rate: interleaved channels")
    p.add_argument("--json", action="store_true", help="one JSON object per window on stdout")
    p.add_argument("--batch-size", type=int, default=0,
                   help="windows per model call (default 0: 4, the fastest on 2 CPU cores); larger for a GPU")
    p.add_argument("--quiet", action="store_true", help="no progress bar (off anyway when stderr is not a terminal)")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="default", help="model weights (default: the embedded model)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (CUDA when torch sees one)")


def load_cli_model(args: argparse.Namespace) -> InferenceModel:
    """The model replay and calibrate run: the factory's choice of runtime, as the node's."""
    from clap_core import load_model

    return load_model(args.weights, device=args.device, device_parameter="--device")


def run_replay(args: argparse.Namespace) -> int:
    from clap_core.predicates import PredicateEngine, load_predicate_config

    from tqdm import tqdm

    from .replay import BLOCK_WINDOWS, ReplayStats, open_source, replay, torch_threads_for

    if args.batch_size < 0:
        raise ClapError(f"--batch-size: must be positive (or 0 for the default), got {args.batch_size}")
    batch = args.batch_size or BLOCK_WINDOWS
    cfg = load_predicate_config(args.config)
    source = open_source(args.path, args.topic, args.sample_rate, args.channels)
    model = load_cli_model(args)
    engine = PredicateEngine(model, cfg, window_s=args.window or model.clip_seconds, hop_s=args.hop, batch=batch)
    _eprint(f"replaying {source.description}")
    source.chunks = tqdm(source.chunks, total=source.n_chunks, desc="replay", unit="chunk", file=sys.stderr,
                         disable=True if args.quiet else None, leave=False)
    stats = ReplayStats()
    start = time.perf_counter()
    with torch_threads_for(model):
        for result in replay(engine, source, stats, block_windows=batch):
            t0 = stats.t_first or 0.0
            print(json.dumps(result.to_json(t0)) if args.json else _human_line(result, t0))
    sys.stdout.flush()
    wall = time.perf_counter() - start
    for t, length in stats.gaps:
        kind = "missing audio" if length > 0 else "audio stamped earlier than expected"
        _eprint(f"gap at {t:.3f} s: {abs(length):.3f} s of {kind} (windows flagged 'gap')")
    speed = stats.audio_s / wall if wall > 0 else float("inf")
    _eprint(f"{stats.windows} windows, {stats.audio_s:.1f} s of audio in {wall:.2f} s ({speed:.0f}x real time)")
    return 0


def _human_line(result: object, t0: float) -> str:
    r = result  # WindowResult
    parts = [f"{r.t_start - t0:8.2f}-{r.t_end - t0:8.2f}s"]  # type: ignore[attr-defined]
    for name, value, score in zip(r.names, r.values, r.scores):  # type: ignore[attr-defined]
        parts.append(f"{name}={'ON ' if value else 'off'}({score:.2f})")
    if r.flags:  # type: ignore[attr-defined]
        parts.append("[" + ",".join(r.flags) + "]")  # type: ignore[attr-defined]
    return "  ".join(parts)


# -- bag-from-audio -----------------------------------------------------------------------------
def add_bag_from_audio(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="audio files, played one after the other")
    p.add_argument("--out", required=True, help="new bag folder")
    p.add_argument("--layout", choices=("stamped", "raw"), default="stamped",
                   help="stamped: mgonzs13 AudioStamped; raw: ros-drivers AudioData + AudioInfo")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--rate", type=int, default=16000, help="sample rate in the bag (default 16000)")
    p.add_argument("--chunk", type=int, default=1024, help="samples per message (default 1024)")
    p.add_argument("--silence", type=float, default=1.0, help="seconds of silence between files")


def run_bag_from_audio(args: argparse.Namespace) -> int:
    import numpy as np

    from clap_core.audio_io import load_audio, resample

    from .bag_writer import AudioBagWriter

    t0 = 1.7e9
    gap = np.zeros(int(args.silence * args.rate), np.float32)
    waves = []
    for f in args.files:
        wave, sr = load_audio(f)
        waves.append(resample(wave, sr, args.rate))
    total = 0
    with AudioBagWriter(args.out, args.layout, args.storage) as writer:
        for f, wave in zip(args.files, waves):
            audio = np.concatenate([wave, gap]) if gap.size else wave
            _eprint(f"{f}: {total / args.rate:.2f}–{(total + len(wave)) / args.rate:.2f} s")
            for i in range(0, len(audio), args.chunk):
                writer.write(audio[i:i + args.chunk], args.rate, t0 + (total + i) / args.rate)
            total += len(audio)
    _eprint(f"wrote {args.out} ({args.storage}, {args.layout} layout, {total / args.rate:.1f} s)")
    return 0


# -- score --------------------------------------------------------------------------------------
def add_score(p: argparse.ArgumentParser) -> None:
    p.add_argument("timeline", help="JSON lines from replay --json")
    p.add_argument("labels", help='labels JSON: {"events": [{"start", "end", "predicate"}, ...]}')
    p.add_argument("--json", action="store_true", help="print the scores as JSON")


def run_score(args: argparse.Namespace) -> int:
    from clap_core.predicates.metrics import (format_scores, read_labels, read_timeline, score_timeline,
                                              scores_json)

    scores = score_timeline(read_timeline(args.timeline), read_labels(args.labels))
    print(json.dumps(scores_json(scores), indent=2) if args.json else format_scores(scores))
    return 0


# -- plot ---------------------------------------------------------------------------------------
def add_plot(p: argparse.ArgumentParser) -> None:
    p.add_argument("timeline", help="JSON lines from replay --json")
    p.add_argument("--labels", help="labels JSON, drawn as shaded spans")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--title", help="title above the lanes")


def run_plot(args: argparse.Namespace) -> int:
    from clap_core.predicates.metrics import read_labels, read_timeline
    from clap_core.predicates.plot import plot_timeline

    events = read_labels(args.labels) if args.labels else None
    out = plot_timeline(read_timeline(args.timeline), args.out, events, args.title)
    _eprint(f"wrote {out}")
    return 0


# -- calibrate ----------------------------------------------------------------------------------
def add_calibrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="predicates YAML to start from")
    p.add_argument("--examples", required=True, help="CSV with columns path,predicate,label (pos|neg)")
    p.add_argument("--out", required=True, help="calibrated YAML to write (may equal config)")
    add_model_arguments(p)
    p.add_argument("--no-prototypes", action="store_true", help="only fit thresholds")
    p.add_argument("--window", type=float, default=0.0, help="seconds (default 0: the model's clip length)")
    p.add_argument("--hop", type=float, default=0.5, help="hop between windows (default 0.5 s, as the node)")
    p.add_argument("--background", action="append", default=[], metavar="AUDIO",
                   help="room/background recording the examples are mixed into (repeatable; "
                        "default: a synthetic quiet room tone at -55 dBFS)")
    p.add_argument("--snr-db", type=float, nargs="+", default=[30.0, 20.0, 10.0],
                   help="levels of each example over the background, dB (default 30 20 10)")


def run_calibrate(args: argparse.Namespace) -> int:
    from clap_core.predicates import load_predicate_config, write_predicate_config
    from clap_core.predicates.calibrate import calibrate, read_examples
    from clap_core.predicates.placement import Placement, load_backgrounds

    from .replay import torch_threads_for

    cfg = load_predicate_config(args.config)
    examples = read_examples(args.examples)
    model = load_cli_model(args)
    placement = Placement(snrs_db=tuple(args.snr_db),
                          backgrounds=load_backgrounds(args.background, model.sample_rate) or None)
    with torch_threads_for(model):
        new, reports = calibrate(model, cfg, examples, prototypes=not args.no_prototypes,
                                 window_s=args.window or None, hop_s=args.hop, placement=placement)
    write_predicate_config(new, args.out)
    for r in reports:
        print(r.line())
        if r.warning:
            _eprint(f"warning: {r.warning}")
    _eprint(f"wrote {args.out}")
    return 0


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "replay": ("run a bag or audio file through the node's predicate pipeline", add_replay, run_replay),
    "bag-from-audio": ("turn audio files into a rosbag2 bag of audio messages", add_bag_from_audio,
                       run_bag_from_audio),
    "score": ("precision, recall, F1, delay and false alarms against labels", add_score, run_score),
    "plot": ("draw a timeline (scores, thresholds, values, labels) as PNG", add_plot, run_plot),
    "calibrate": ("fit thresholds and audio prototypes from labelled recordings", add_calibrate, run_calibrate),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clap-predicates", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ClapError as exc:
        _eprint(f"clap-predicates {args.command}: error: {exc}")
        return 2
    except BrokenPipeError:  # `... | head` closed stdout: not an error
        return 0


if __name__ == "__main__":
    sys.exit(main())
