"""GPT-2's tokenizer files (`vocab.json`, `merges.txt`) rebuilt from a tiktoken rank file.

GPT-2's byte-level BPE ships as data inside the `openai-whisper` sdist
(`whisper/assets/gpt2.tiktoken`: one base64 token and its rank per line). A rank file and the
usual `transformers` files hold the same information: a token's id is its rank, and the merge
that creates a token of rank r is the one BPE reaches when it may only use ranks below r.
`scripts/setup.sh` fetches the sdist; `python -m clap_core.gpt2_bpe RANKS FOLDER` writes the files.
"""
from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from .errors import CheckpointError

END_OF_TEXT = "<|endoftext|>"
TOKENIZER_FILES = ("vocab.json", "merges.txt")


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes stay
    themselves, the others are shifted to code points from 256 up, in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def read_ranks(path: Path) -> dict[bytes, int]:
    """`token_base64 rank` lines → {token bytes: rank}."""
    ranks: dict[bytes, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the GPT-2 rank file ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError:
            raise CheckpointError(f"{path}:{number}: expected 'base64-token rank'") from None
    return ranks


def _merge_of(token: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """The pair BPE merges last to form `token`, using only ranks below the token's own."""
    limit = ranks[token]
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < limit and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) != 2:
        raise CheckpointError(f"GPT-2 ranks: token {token!r} cannot be formed from lower-ranked tokens")
    return parts[0], parts[1]


def write_tokenizer_files(ranks_path: Path, folder: Path) -> Path:
    """Write `vocab.json` and `merges.txt` (GPT-2's ids; `<|endoftext|>` = 50256) into `folder`."""
    ranks = read_ranks(Path(ranks_path))
    to_text = byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_text[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    vocab[END_OF_TEXT] = len(ranks)
    merges = [_merge_of(token, ranks) for token, _ in sorted(ranks.items(), key=lambda kv: kv[1])
              if len(token) > 1]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    lines = ["#version: 0.2", *(f"{text(a)} {text(b)}" for a, b in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m clap_core.gpt2_bpe GPT2_TIKTOKEN OUTPUT_FOLDER", file=sys.stderr)
        return 2
    try:
        print(write_tokenizer_files(Path(args[0]), Path(args[1])))
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
