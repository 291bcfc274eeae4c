"""Few-shot calibration for the generalisation bag (gen1): macro F1 per window before and after.

Calibrates test/bags/generalisation.yaml (prompts only) from `test/bags/gen1_examples.csv`:
sfx_pool recordings of the bag's classes that are NOT in the bag (2 positives per predicate where
sfx_pool has them: doorbell has 1 spare, so its calibration is refused), negatives from other
sfx_pool classes and the other predicates' positives. Prints the calibrator's held-out report, then
replays the gen1 bag with the prompts-only and the calibrated YAML and scores both.

    .venv/bin/python bench/calibrate_gen.py [--sfx-pool ../shared/data/sfx_pool] [--background F ...] [--config YAML]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clap_core import load_model  # noqa: E402
from clap_core.predicates import PredicateEngine, load_predicate_config, write_predicate_config  # noqa: E402
from clap_core.predicates.calibrate import calibrate, read_examples  # noqa: E402
from clap_core.predicates.metrics import format_scores, macro_f1, read_labels, score_timeline  # noqa: E402
from clap_core.predicates.placement import Placement, load_backgrounds  # noqa: E402
from clap_ros.replay import open_source, replay  # noqa: E402

BAGS = REPO / "test" / "bags"


def examples_csv(sfx_pool: Path, folder: Path) -> Path:
    """The committed examples list with its paths made absolute under `sfx_pool`."""
    rows = (BAGS / "gen1_examples.csv").read_text().splitlines()
    out = folder / "examples.csv"
    out.write_text("\n".join([rows[0]] + [f"{sfx_pool / r}" for r in rows[1:]]) + "\n")
    return out


def bag_scores(model: object, cfg_path: Path) -> list:
    engine = PredicateEngine(model, load_predicate_config(cfg_path), hop_s=0.5)
    results = list(replay(engine, open_source(BAGS / "data" / "gen1_stamped_mcap")))
    timeline = [r.to_json(results[0].t_start) for r in results]
    return score_timeline(timeline, read_labels(BAGS / "data" / "gen1.labels.json"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sfx-pool", type=Path, default=REPO.parent / "shared" / "data" / "sfx_pool")
    ap.add_argument("--background", type=Path, action="append", default=[])
    ap.add_argument("--no-prototypes", action="store_true")
    ap.add_argument("--config", type=Path, default=BAGS / "generalisation.yaml",
                    help="the predicates YAML to calibrate (its names must be gen1's)")
    args = ap.parse_args()
    model = load_model("default")
    config = args.config
    with tempfile.TemporaryDirectory() as tmp:
        examples = read_examples(examples_csv(args.sfx_pool.resolve(), Path(tmp)))
        placement = Placement(backgrounds=load_backgrounds(args.background, model.sample_rate) or None)
        t0 = time.perf_counter()
        new, reports = calibrate(model, load_predicate_config(config), examples,
                                 prototypes=not args.no_prototypes, placement=placement)
        print(f"calibration: {time.perf_counter() - t0:.1f} s")
        for r in reports:
            print(r.line())
            if r.warning:
                print(f"  warning: {r.warning}")
        out = Path(tmp) / "calibrated.yaml"
        write_predicate_config(new, out)
        before, after = bag_scores(model, config), bag_scores(model, out)
    print("\ngen1 bag, prompts only:\n" + format_scores(before))
    print("\ngen1 bag, calibrated:\n" + format_scores(after))
    print(f"\nmacro F1 per window on gen1: prompts only {macro_f1(before):.3f}, calibrated {macro_f1(after):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
