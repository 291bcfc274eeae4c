"""Patch outputs remembered across overlapping windows, keyed by the exact network input.

Why: the streaming engine's windows overlap (a 5-s window every 0.5 s shares 90 % of its audio
with the previous one), and a patch tower such as YAMNet runs its network on each 0.96-s patch on
its own. When a patch's network input is bit-for-bit one already run, its outputs are reused
instead of recomputed. The key is the input itself (YAMNet's uint8 patch, compared in full, not a
hash), so a hit can only ever return what the network would have returned: there are no
alignment assumptions to get wrong, and gaps, resets, another hop or a level change just miss.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

Outputs = Sequence[np.ndarray]


class PatchCache:
    """Least-recently-used map from a patch's network input (its bytes) to its output rows."""

    def __init__(self, entries: int) -> None:
        if entries < 1:
            raise ValueError(f"patch cache: entries must be positive, got {entries}")
        self.entries = int(entries)
        self._store: OrderedDict[bytes, tuple[np.ndarray, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def run(self, inputs: np.ndarray, compute: Callable[[np.ndarray], Outputs]) -> list[np.ndarray]:
        """Outputs of `compute` for every row of `inputs` `[N, ...]`, each output `[N, ...]`;
        `compute` only sees the rows not stored yet (once each, in one call)."""
        if len(inputs) == 0:
            return list(compute(inputs))
        keys = [row.tobytes() for row in inputs]
        todo: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self._store and key not in todo:
                todo[key] = i
        if todo:
            fresh = compute(inputs[list(todo.values())])
            for j, key in enumerate(todo):
                self._store[key] = tuple(np.array(out[j]) for out in fresh)
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        rows = [self._store[key] for key in keys]
        for key in keys:
            self._store.move_to_end(key)
        while len(self._store) > self.entries:
            self._store.popitem(last=False)
        return [np.stack([row[k] for row in rows]) for k in range(len(rows[0]))]

    def clear(self) -> None:
        self._store.clear()
