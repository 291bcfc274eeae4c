"""clap-weights list | download NAME | convert SRC OUT: the published CLAP weights, explicitly.

`download` is the only code path of this project that touches the network (Hugging Face hub,
through `huggingface_hub`, with its progress bar); files go to the first weights folder
($CLAP_WEIGHTS_DIR, default ~/.cache/clap_ros), where `load_model(NAME)` looks for them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from ..errors import CheckpointError, ClapError
from ..weights_registry import NAMED_WEIGHTS, PACKAGE_WEIGHTS, NamedWeights, resolve_weights, weights_search_path
from .common import run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clap-weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="registered names, where each is looked for, present or not")
    listing.add_argument("--json", action="store_true", help="one JSON object per name")
    download = sub.add_parser("download", help="fetch NAME from the Hugging Face hub (needs internet)")
    download.add_argument("name", choices=sorted(n for n, w in NAMED_WEIGHTS.items() if w.repo))
    convert = sub.add_parser("convert", help="any loadable checkpoint → the project's safetensors folder")
    convert.add_argument("source", help="a registered name or checkpoint path (.pth, folder)")
    convert.add_argument("output", help="folder to write config.json + model.safetensors into")
    return parser


def _locations(entry: NamedWeights) -> list[Path]:
    if entry.shipped:
        return [PACKAGE_WEIGHTS / entry.filename]
    return [folder / entry.filename for folder in weights_search_path()]


def _list(as_json: bool) -> int:
    for name, entry in NAMED_WEIGHTS.items():
        try:
            found: str | None = str(resolve_weights(name))
        except ClapError:
            found = None
        places = [str(p) for p in _locations(entry)]
        if as_json:
            print(json.dumps({"name": name, "present": found is not None, "path": found, "looked_in": places,
                              "description": entry.description}))
            continue
        state = f"present: {found}" if found else "not present"
        print(f"{name:28s} {state}\n{'':28s} {entry.description}\n{'':28s} looked for: {', '.join(places)}")
    return 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(repo: str, repo_file: str, target: Path) -> Path:
    """One file straight into `target`'s folder, checked against the SHA-256 the hub publishes for
    large (LFS) files."""
    from huggingface_hub import HfApi, hf_hub_download

    if target.name != Path(repo_file).name:
        raise ClapError(f"registry: {repo}/{repo_file} would land under another name than {target}")
    downloaded = Path(hf_hub_download(repo, repo_file, local_dir=str(target.parent)))
    info = next(iter(HfApi().get_paths_info(repo, [repo_file])), None)
    lfs = getattr(info, "lfs", None)
    if lfs is not None and _sha256(downloaded) != lfs.sha256:
        downloaded.unlink()
        raise CheckpointError(f"{repo}/{repo_file}: SHA-256 differs from the one the hub publishes; "
                              "the file was deleted, download it again")
    return downloaded


def _download(name: str) -> int:
    from huggingface_hub import snapshot_download

    entry = NAMED_WEIGHTS[name]
    dest = weights_search_path()[0]
    try:
        if entry.files:
            for repo_file, local in entry.files:
                print(_fetch(entry.repo, repo_file, dest / local))
        else:
            print(snapshot_download(entry.repo, local_dir=str(dest / entry.filename)))
        for repo, repo_file, local in entry.extra:
            print(_fetch(repo, repo_file, dest / local))
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - offline, DNS, HTTP, proxy: all one message
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ClapError(f"download {name}: cannot fetch {entry.repo} from the Hugging Face hub ({first}); "
                        f"run this with internet access, or {entry.how_to_get}") from None
    return 0


def _convert(source: str, output: str) -> int:
    from ..checkpoints import save_checkpoint
    from ..factory import load_torch_model
    from ..model import ClapModel

    model = load_torch_model(source)
    if not isinstance(model, ClapModel):
        raise CheckpointError(f"{source}: a transformers CLAP folder is already safetensors and loads as it is; "
                              "nothing to convert")
    print(save_checkpoint(model, output))
    return 0


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list(args.json)
    if args.command == "download":
        return _download(args.name)
    return _convert(args.source, args.output)


def main(argv: list[str] | None = None) -> int:
    return run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
