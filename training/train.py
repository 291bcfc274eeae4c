"""Train or fine-tune a CLAP model contrastively on audio–caption manifests.

    python -m training.train --config training/configs/example.yaml [--set optim.lr=1e-4 ...]
    python -m training.train --resume runs/clap [--set train.epochs=60]
    torchrun --nproc_per_node=4 training/train.py --config ...        # several GPUs, same script

Everything about a run is in the YAML config (see training/config.py and docs/training.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (`python training/train.py`, torchrun): import as a package
    _here = Path(__file__).resolve().parent
    sys.path = [p for p in sys.path if Path(p or ".").resolve() != _here]  # config.py etc. are not top-level
    sys.path.insert(0, str(_here.parent))
    __package__ = "training"

from clap_core.cli.common import run as run_cli  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="training config (YAML)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override one config field (repeatable), e.g. --set optim.lr=1e-4")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR exactly where its last checkpoint left it")
    args = parser.parse_args(argv)
    if (args.config is None) == (args.resume is None):
        parser.error("give exactly one of --config (new run) or --resume (continue a run)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Expected failures end in one line `error: …` and exit 2, as every CLI here."""
    return run_cli(_train, argv)


def _train(argv: list[str] | None) -> int:
    args = parse_args(argv)
    from training.config import load_config
    from training.loop import run
    from training.run_state import resume_config

    if args.resume is not None:
        config = resume_config(args.resume, args.overrides)
    else:
        config = load_config(args.config, args.overrides)
    state = run(config, resume_dir=args.resume)
    if state.history:
        print(f"done: {state.epoch} epochs, checkpoints in {config.train.output_dir}/best and /last", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
