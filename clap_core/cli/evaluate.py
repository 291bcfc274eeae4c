"""clap-eval zeroshot --manifest CSV: zero-shot top-1 accuracy over a labelled manifest."""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

from tqdm import tqdm

from ..factory import load_model
from ..errors import AudioFileError, ClapError
from ..inference import BATCH_SIZE, embed_files, prompt_embeddings, zero_shot_probabilities
from ..manifest import read_labelled_manifest
from .common import add_batch_options, add_model_options, check_template, labels_from, run, warn


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clap-eval", description="Evaluate a CLAP model.")
    sub = parser.add_subparsers(dest="command", required=True)
    zs = sub.add_parser("zeroshot", help="zero-shot classification accuracy on a labelled CSV")
    zs.add_argument("--manifest", required=True, help="CSV with at least 'path' and 'label' columns")
    zs.add_argument("--root", help="folder that relative paths start from (default: the CSV's folder)")
    add_model_options(zs)
    add_batch_options(zs, BATCH_SIZE)
    return parser


def zero_shot(args: argparse.Namespace) -> dict:
    clips = read_labelled_manifest(args.manifest, args.root)
    classes = labels_from(args, fallback=sorted({clip.label for clip in clips}))
    template = check_template(args.template)
    unknown = sorted({clip.label for clip in clips} - set(classes))
    if unknown:
        raise ClapError(f"{args.manifest}: labels not among the classes: {', '.join(unknown[:10])}")
    model = load_model(args.weights, device=args.device, device_parameter="--device")
    template = template or model.template
    text_emb = prompt_embeddings(model, classes, template)
    hits: dict[str, list[int]] = defaultdict(list)
    skipped = []
    embedded = embed_files(model, (clip.path for clip in clips), args.batch_size)
    bar = tqdm(zip(clips, embedded), total=len(clips), desc="zero-shot", unit="clip", file=sys.stderr,
               disable=True if args.quiet else None)
    for clip, (_, emb) in bar:
        if isinstance(emb, AudioFileError):
            warn(f"skipped {emb}")
            skipped.append(str(clip.path))
            continue
        probs = zero_shot_probabilities(model, emb, text_emb)
        hits[clip.label].append(int(classes[int(probs.argmax())] == clip.label))
    n = sum(len(v) for v in hits.values())
    if n == 0:
        raise ClapError(f"{args.manifest}: no clip could be read")
    return {
        "accuracy": sum(sum(v) for v in hits.values()) / n,
        "n": n,
        "n_classes": len(classes),
        "per_class": {label: sum(v) / len(v) for label, v in sorted(hits.items())},
        "template": template,
        "weights": str(args.weights),
        "skipped": skipped,
    }


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    result = zero_shot(args)
    if args.json:
        print(json.dumps(result))
    else:
        for label, acc in result["per_class"].items():
            print(f"{label:40s} {acc:6.1%}")
        print(f"accuracy {result['accuracy']:.1%} over {result['n']} clips, {result['n_classes']} classes "
              f"(template {result['template']!r}; {len(result['skipped'])} skipped)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
