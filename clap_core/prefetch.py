"""Run an iterator a few items ahead in a worker thread, so decoding overlaps inference.

Why a thread: audio decoding (soundfile), resampling (scipy) and bag reading spend their time in C
code that releases the GIL, while the model runs in ONNX Runtime or torch, which release it too;
one worker is enough to hide the decoding behind the inference. Items come out in order, and an
exception raised by the iterator is raised again in the consumer, at the item it happened at.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_END = object()
_POLL_S = 0.1  # how often a blocked worker checks whether the consumer has gone


def prefetched(items: Iterable[T], depth: int) -> Iterator[T]:
    """`items` in order, produced up to `depth` ahead by a worker thread (`depth` 0: in this thread)."""
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))

    worker = threading.Thread(target=work, name="clap-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item  # type: ignore[misc]
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5.0)
