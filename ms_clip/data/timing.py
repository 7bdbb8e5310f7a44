"""How much of a loop's wall time is spent waiting for input data (is the loop input-bound?)."""
from __future__ import annotations

import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


class InputWaitMeter:
    """Wraps an iterable; ``wait_seconds`` is the time spent inside its ``next()``.

    ``share`` = wait / wall time since iteration started: ~0 means the consumer (the model) is the
    bottleneck, close to 1 means the data pipeline is.
    """

    def __init__(self, iterable: Iterable[T]):
        self.iterable = iterable
        self.wait_seconds = 0.0
        self.items = 0
        self._start = None

    def __iter__(self) -> Iterator[T]:
        self._start = time.perf_counter()
        iterator = iter(self.iterable)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.wait_seconds += time.perf_counter() - t0
                return
            self.wait_seconds += time.perf_counter() - t0
            self.items += 1
            yield item

    @property
    def wall_seconds(self) -> float:
        return 0.0 if self._start is None else time.perf_counter() - self._start

    @property
    def share(self) -> float:
        wall = self.wall_seconds
        return self.wait_seconds / wall if wall > 0 else 0.0
