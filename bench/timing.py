"""Timing for the benchmark scripts: one way to time a call, shared by all of them."""
from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable


def time_call(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds per call (CPU time is steadier on a busy machine)."""
    fn()  # warm-up: first calls allocate and pick kernels
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def start_run(threads: int, details: str) -> None:
    """Set torch's threads (0: its default) and print what the numbers ran on: torch, threads, the
    load average before, the CPU model and its ISA flags (timings from another machine differ)."""
    import torch

    from clap_core.precision import cpu_description

    if threads:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {details}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"CPU: {cpu_description()}")
