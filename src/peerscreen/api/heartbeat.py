"""A clock for the sockets' heartbeat that rides on the wake-ups the server makes anyway.

The heartbeat pings a few sockets every few tens of milliseconds, so pings and their pongs
never come in bursts that would delay the messages in flight. A tick on a timer of its own
is a wake-up of the process: on a virtual machine with cold caches, that is what the
heartbeat costs most. Here a tick falls due on its timer when the server is idle, and when
messages are flowing it runs right after one of them, in the same turn of the event loop,
with its timer moved on unfired.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

logger = logging.getLogger("peerscreen.socket")


class Heartbeat:
    """Call ``tick(turn)`` (turn = 0, 1, 2...) about every ``every`` seconds.

    :meth:`poke` tells the clock the loop is awake anyway: a tick due within ``early``
    seconds runs once the current callback returns, not on its timer.
    """

    def __init__(self, every: float, tick: Callable[[int], None], early: float = 0.0) -> None:
        self.every = every
        self.early = early
        self._tick = tick
        self._turn = 0
        self.next_due = float("inf")  # monotonic time; none until started
        self._timer: asyncio.TimerHandle | None = None
        self._queued = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.next_due = time.monotonic() + self.every
        self._arm(self.next_due)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.next_due = float("inf")
        self._loop = None

    def poke(self, now: float) -> None:
        """The loop is awake at ``now`` (time.monotonic()) for something else."""
        if now >= self.next_due - self.early and not self._queued and self._loop is not None:
            self._queued = True
            self._loop.call_soon(self._run, False)

    def _arm(self, due: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(max(0.0, due - time.monotonic()), self._run, True)

    def _run(self, from_timer: bool) -> None:
        if self._loop is None:
            return  # stopped
        if from_timer:
            self._timer = None
        else:
            self._queued = False
        now = time.monotonic()
        if now < self.next_due - self.early:
            # Ran already for this turn (a poke and the timer both came), or a timer
            # that fired early: the next turn keeps its timer.
            if self._timer is None:
                self._arm(self.next_due)
            return
        turn = self._turn
        self._turn += 1
        self.next_due += self.every
        if self.next_due <= now:
            self.next_due = now + self.every  # fell behind (a stall): no burst to catch up
        self._arm(self.next_due)
        try:
            self._tick(turn)
        except Exception:
            logger.exception("heartbeat failed")


__all__ = ["Heartbeat"]
