"""Shared by the benchmarks: the median wall time of repeated runs, and the CPU time a
process tree has used."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


def timed(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Median seconds of `repeats` calls of `fn`, and what the last call returned."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by a process and its live children."""
    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total
