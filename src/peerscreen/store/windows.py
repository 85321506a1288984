"""Calls counted per key over a moving window, in this process (the in-memory store's)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class CallWindows:
    """Each key keeps the times of its calls in the last window, oldest first, at most
    ``amount`` of them: a call costs O(1) amortized, the wait it is told is exact, and
    nothing runs in the background. Keys idle for a whole window are forgotten every few
    thousand calls.
    """

    PRUNE_EVERY = 4096

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._times: dict[str, tuple[float, deque[float]]] = {}  # key -> (period, times)
        self._calls = 0

    def count(self, key: str, amount: int, period: float, take: bool = True) -> int | None:
        """None when one more call is within ``amount`` per ``period`` (counted, with
        ``take``), else the whole seconds until one would be."""
        now = self.clock()
        entry = self._times.get(key)
        if entry is not None:
            times = entry[1]
            horizon = now - period
            while times and times[0] <= horizon:
                times.popleft()
            if len(times) >= amount:
                return max(1, math.ceil(times[0] + period - now))
        if take:
            if entry is None:
                entry = self._times[key] = (period, deque(maxlen=max(1, amount)))
            entry[1].append(now)
            self._calls += 1
            if self._calls % self.PRUNE_EVERY == 0:
                self.prune(now)
        return None

    def prune(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        idle = [k for k, (period, t) in self._times.items() if not t or t[-1] <= now - period]
        for key in idle:
            del self._times[key]

    def __len__(self) -> int:
        return len(self._times)
