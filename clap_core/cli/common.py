"""What every CLI shares: option groups, label lists, and turning expected errors into one line."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..config import DEFAULT_TEMPLATE
from ..errors import ClapError
from ..manifest import read_label_list


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default="default",
                        help="'default', a registered name (msclap-2022) or a checkpoint path")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (CUDA when torch sees one)")
    parser.add_argument("--template", help="prompt template with one {} for the label (default: the one the "
                        f"model was trained with, usually {DEFAULT_TEMPLATE!r})")
    # --labels here for every CLI: where a parser lacked it, argparse took "--labels" for an
    # abbreviation of --labels-file and read the label list as a file name.
    parser.add_argument("--labels", help='comma-separated labels, e.g. "dog barking,rain,siren"')
    parser.add_argument("--labels-file", help="one label per line")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def add_batch_options(parser: argparse.ArgumentParser, batch_size: int) -> None:
    """Throughput options of the CLIs that work through many windows."""
    parser.add_argument("--batch-size", type=_positive, default=batch_size,
                        help=f"windows per model call (default {batch_size}); results do not depend on it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (it is off anyway when "
                        "stderr is not a terminal)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def labels_from(args: argparse.Namespace, fallback: list[str] | None = None) -> list[str]:
    """Labels from --labels-file, else --labels "a,b,c", else the fallback."""
    if args.labels_file:
        return read_label_list(args.labels_file)
    text = args.labels
    if text:
        labels = [label.strip() for label in text.split(",") if label.strip()]
        if labels:
            return labels
    if fallback:
        return fallback
    raise ClapError("no labels: pass --labels \"a,b,c\" or --labels-file FILE")


def check_template(template: str | None) -> str | None:
    """The --template given, checked before any model loads; None (not given): the model's own."""
    if template is not None and template.count("{}") != 1:
        raise ClapError(f"--template: needs exactly one {{}} for the label, got {template!r}")
    return template


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a CLI body; expected failures print one line `error: …` and exit 2."""
    try:
        return main(argv)
    except ClapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
