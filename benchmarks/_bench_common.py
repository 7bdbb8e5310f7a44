"""Helpers every benchmark script shares: one timing rule and the host's CPU name."""
from __future__ import annotations

import platform
import statistics
import time
from typing import Callable, Tuple


def time_call(fn: Callable[[], object], reps: int) -> Tuple[float, float]:
    """(first call seconds, median of ``reps`` timed calls after one untimed warm-up call)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (ratios mean something only with the host recorded)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
