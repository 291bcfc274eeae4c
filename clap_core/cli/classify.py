"""clap-classify FILE... --labels "a,b,c": zero-shot labels for audio files."""
from __future__ import annotations

import argparse
import json
import sys

from ..factory import load_model
from ..errors import AudioFileError
from ..inference import embed_file, prompt_embeddings, zero_shot_probabilities
from .common import add_model_options, check_template, labels_from, run, warn


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clap-classify", description=__doc__)
    parser.add_argument("files", nargs="+", help="audio files (wav, flac, ogg, …)")
    parser.add_argument("--top", type=int, default=3, help="labels to print per file")
    add_model_options(parser)
    return parser


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    labels = labels_from(args)
    template = check_template(args.template)
    model = load_model(args.weights, device=args.device, device_parameter="--device")
    template = template or model.template
    text_emb = prompt_embeddings(model, labels, template)
    failures = 0
    for path in args.files:
        try:
            probs = zero_shot_probabilities(model, embed_file(model, path), text_emb)
        except AudioFileError as exc:
            warn(f"skipped {exc}")
            failures += 1
            if args.json:
                print(json.dumps({"path": path, "error": str(exc)}))
            continue
        ranked = sorted(zip(labels, probs.tolist()), key=lambda item: -item[1])
        if args.json:
            print(json.dumps({"path": path, "label": ranked[0][0], "template": template,
                              "probabilities": dict(zip(labels, probs.tolist()))}))
        else:
            shown = ", ".join(f"{label} {p:.3f}" for label, p in ranked[: args.top])
            print(f"{path}: {shown}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
