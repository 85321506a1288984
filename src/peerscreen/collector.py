"""Garbage collection for a process that holds thousands of long-lived sockets.

CPython's full collection walks every container object that is not frozen, and each open
socket owns dozens of them (protocol, parser, pending receive, mailbox): with a few
thousand sockets a full collection stops every delivery for 50-200 ms. What survives a
full collection has proven long-lived, so it is frozen right after (``gc.freeze``): the
next full collection walks only what became long-lived since, and pauses stay short.

The price is that a frozen object that later becomes part of a garbage cycle is not
reclaimed. That leak is bounded: when the frozen objects have doubled since the last
reckoning, they are all thawed and collected once (one long pause, at most once per
doubling of the heap), then frozen again.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from typing import Any

logger = logging.getLogger("peerscreen.collector")

RECKON_GROWTH = 2.0
"""Thaw and collect everything when the frozen objects have grown by this factor."""
COUNT_EVERY = 30.0
"""Seconds between counts of the frozen objects."""


class FreezingCollector:
    """Freeze the survivors of every full collection; reckon with them now and then."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = False
        self._reckoned = 0  # frozen objects after the last full reckoning
        self._counted = -math.inf  # when the frozen objects were last counted
        self.count_every = COUNT_EVERY
        self.reckonings = 0

    def start(self) -> None:
        """Collect, freeze what the start-up loaded, and watch full collections."""
        self._loop = asyncio.get_running_loop()
        gc.collect()
        gc.freeze()
        self._reckoned = gc.get_freeze_count()
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self._loop = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector, in whichever thread allocated: freezing is left to
        # the event loop, soon after.
        if phase != "stop" or info["generation"] != 2 or self._pending:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._pending = True
        loop.call_soon_threadsafe(self._freeze)

    def _freeze(self) -> None:
        self._pending = False
        gc.freeze()
        # Counting the frozen objects walks them all: not at every full collection (at
        # thousands of messages a second, several a minute).
        now = time.monotonic()
        if now - self._counted < self.count_every:
            return
        self._counted = now
        if gc.get_freeze_count() > self._reckoned * RECKON_GROWTH:
            self.reckon()

    def reckon(self) -> None:
        """Thaw everything, collect it, and freeze what is left: reclaims cycles that
        formed among frozen objects."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self._reckoned = gc.get_freeze_count()
        self.reckonings += 1
        logger.info(
            "garbage collector: full reckoning, %d objects reclaimed, %d kept, %.0f ms",
            found,
            self._reckoned,
            (time.perf_counter() - started) * 1000,
        )
