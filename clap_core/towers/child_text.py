"""A text tower that runs in a short-lived child process.

A robot's node embeds its prompts once (and again on a reload) and then only listens. Loading the
text encoder into that process would keep its code and weights resident for the whole run —
`transformers` alone is ≈ 100–180 MB that Python never gives back. This stand-in starts a fresh
Python for each call (`python -m clap_core.towers.child_text`), which builds the real tower from
the checkpoint, embeds the texts, writes the array to stdout and exits.

A plain subprocess rather than `multiprocessing`: spawning through multiprocessing re-imports the
caller's main script, which breaks scripts that lack an `if __name__ == "__main__"` guard.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import numpy as np
import torch

from ..errors import ClapError
from .base import TextTower

ERROR_PREFIX = "clap-text-child error: "
TIMEOUT_S = 600.0  # BERT-base on a few hundred prompts takes seconds; a hung child must not hang the caller


class ChildProcessTextTower(TextTower):
    """`source` (a `checkpoints.TextTowerSource`) says how the child builds the real tower."""

    def __init__(self, source: Any, out_dim: int) -> None:
        super().__init__()
        self.source = source
        self.out_dim = int(out_dim)
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)  # follows .to(device)

    def forward(self, texts: list[str]) -> torch.Tensor:
        if torch.is_grad_enabled():
            raise ClapError("a text tower in a child process gives no gradients; load the model "
                            "without isolate_text to train it")
        request = json.dumps({"source": self.source.to_dict(), "texts": list(texts)})
        try:
            done = subprocess.run([sys.executable, "-m", __name__], input=request.encode(), capture_output=True,
                                  timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ClapError(f"the text-encoder child process gave no answer in {TIMEOUT_S:.0f} s; "
                            "try loading the model without isolate_text") from None
        if done.returncode != 0:
            raise ClapError(_child_error(done.stderr.decode(errors="replace"), done.returncode))
        return torch.from_numpy(np.load(io.BytesIO(done.stdout))).to(self._anchor.device)


def _child_error(stderr: str, code: int) -> str:
    for line in reversed(stderr.strip().splitlines()):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX):]
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {code}"
    return f"the text-encoder child process failed ({tail[:300]}); try loading without isolate_text"


def _child_main() -> int:
    from ..checkpoints import TextTowerSource

    request = json.loads(sys.stdin.buffer.read())
    try:
        tower = TextTowerSource.from_dict(request["source"])().eval()
        with torch.inference_mode():
            out = tower(request["texts"]).float().cpu().numpy()
    except ClapError as exc:
        print(ERROR_PREFIX + str(exc), file=sys.stderr)
        return 1
    buffer = io.BytesIO()
    np.save(buffer, out, allow_pickle=False)
    sys.stdout.buffer.write(buffer.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main())
