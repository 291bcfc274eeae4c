"""Replay speed and quality on the committed test bags (or any bags with labels beside them).

Prints, per bag and hop: seconds of audio, wall time, real-time factor (audio s / wall s), mean
wall time per window, CPU seconds used by this process (on a shared machine the wall time grows
with other load; audio s / CPU s is the speed one core would give if it were free), and per-predicate F1 / detection delay / false alarms per minute when
`<scene>.labels.json` exists. Runs the same code as `clap-predicates replay`.

    .venv/bin/python bench/bench_replay.py [--weights default] [--hops 0.5 1.0] [--bags DIR ...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clap_core import load_model  # noqa: E402
from clap_core.predicates import PredicateEngine, load_predicate_config  # noqa: E402
from clap_core.predicates.metrics import format_scores, macro_f1, read_labels, score_timeline  # noqa: E402
from clap_ros.replay import ReplayStats, open_source, replay, torch_threads_for  # noqa: E402

BAG_DIR = ROOT / "test" / "bags" / "data"
CONFIG = ROOT / "test" / "bags" / "predicates.yaml"


def labels_for(bag: Path) -> Path | None:
    scene = bag.name.split("_")[0]
    path = bag.parent / f"{scene}.labels.json"
    return path if path.is_file() else None


def run_one(engine: PredicateEngine, bag: Path) -> tuple[list[dict], ReplayStats, float, float]:
    """Timeline, stats, wall seconds and CPU seconds (all threads of this process)."""
    stats = ReplayStats()
    start, cpu0 = time.perf_counter(), time.process_time()
    results = list(replay(engine, open_source(bag), stats))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    t0 = stats.t_first or 0.0
    return [r.to_json(t0) for r in results], stats, wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="default")
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--hops", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--bags", type=Path, nargs="+", default=sorted(p for p in BAG_DIR.iterdir() if p.is_dir()))
    ap.add_argument("--quiet", action="store_true", help="only the summary lines")
    ap.add_argument("--torch-threads", type=int, default=0, help="0: as replay chooses (see replay.py)")
    args = ap.parse_args()
    model = load_model(args.weights)
    cfg = load_predicate_config(args.config)
    if args.torch_threads:
        __import__("torch").set_num_threads(args.torch_threads)
        run(args, model, cfg)
    else:
        with torch_threads_for(model):
            run(args, model, cfg)
    return 0


def run(args: argparse.Namespace, model: object, cfg: object) -> None:
    print(f"weights={args.weights} config={args.config.name} window={args.window}s torch threads="
          f"{__import__('torch').get_num_threads()}")
    for hop in args.hops:
        engine = PredicateEngine(model, cfg, window_s=args.window, hop_s=hop)
        run_one(engine, args.bags[0])  # warm-up (ONNX Runtime session, caches)
        total_audio = total_wall = total_cpu = 0.0
        all_scores = []
        for bag in args.bags:
            rows, stats, wall, cpu = run_one(engine, bag)
            total_audio += stats.audio_s
            total_wall += wall
            total_cpu += cpu
            line = (f"hop {hop:.2f}s  {bag.name:<28} {stats.audio_s:6.1f} s audio  {wall:6.2f} s  "
                    f"{stats.audio_s / wall:6.1f}x real time  {wall / max(stats.windows, 1) * 1000:6.1f} ms/window  "
                    f"CPU {cpu:6.2f} s")
            labels = labels_for(bag)
            if labels is not None:
                scores = score_timeline(rows, read_labels(labels))
                all_scores.append(scores)
                line += f"  macro F1 {macro_f1(scores):.2f}"
                if not args.quiet:
                    print(format_scores(scores))
            print(line)
        summary = (f"hop {hop:.2f}s  ALL  {total_audio:.1f} s audio in {total_wall:.2f} s = "
                   f"{total_audio / total_wall:.1f}x real time (wall); CPU {total_cpu:.2f} s = "
                   f"{total_audio / total_cpu:.1f}x real time per core")
        if all_scores:
            per_pred: dict[str, list[float]] = {}
            for scores in all_scores:
                for s in scores:
                    per_pred.setdefault(s.name, []).append(s.f1)
            mean = {k: sum(v) / len(v) for k, v in per_pred.items()}
            summary += "  mean F1 " + " ".join(f"{k}={v:.2f}" for k, v in mean.items())
            summary += f"  macro {sum(mean.values()) / len(mean):.2f}"
        print(summary)


if __name__ == "__main__":
    sys.exit(main())
