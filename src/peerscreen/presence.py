"""Presence: who is here, per this process, and who has been gone past the grace period.

Every call or socket heartbeat marks its participant present (in the store, throttled,
so other processes see it too) and keeps its room from expiring. A participant nobody has
seen for the grace period is handed to ``on_gone`` by whichever process notices first,
whether or not it ever saw that participant: a room outlives no process that held its host.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .config import Settings
from .errors import StoreUnavailable
from .rooms import ENDED_RETENTION, Participant, Presence, move
from .store import Store
from .tasks import all_of, stop_task

logger = logging.getLogger("peerscreen.presence")

TOUCH_EVERY = 30.0
"""Seconds between TTL refreshes of one room by one process: activity within that window
already keeps the room far from expiry."""

SEEN_AGAIN = 1.0
"""Seconds within which being seen again changes nothing worth the bookkeeping: the
grace period is tens of seconds."""

Key = tuple[str, str]  # (room id, participant id)


@dataclass(slots=True)
class _Tracked:
    deadline: float  # monotonic time after which it counts as gone, unless seen elsewhere
    marked: float  # when its presence was last written to the store
    state: Presence
    seen: float = -1e9  # when it was last seen here


class PresenceTracker:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        on_gone: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.store = store
        self.on_gone = on_gone
        self._tracked: dict[Key, _Tracked] = {}
        self._touched: dict[str, float] = {}
        # Rooms this process ended, so late calls do not count their participants present.
        self._ended: dict[str, float] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name="presence-watcher")

    async def stop(self) -> None:
        await stop_task(self._watcher)
        self._watcher = None

    async def seen(self, participant: Participant, *, force: bool = False) -> None:
        """The participant is here now: refresh its presence and the room's expiry."""
        now = time.monotonic()
        mark, touch = self._note(participant, now, force)
        writes: list[Awaitable[None]] = []
        if mark:
            writes.append(
                self.store.mark_seen(
                    participant.room_id,
                    participant.participant_id,
                    time.time(),
                    self.settings.room_ttl,
                )
            )
        if touch:
            writes.append(self.store.touch_room(participant.room_id, self.settings.room_ttl))
        # Both at once where calls wait: one round trip to a shared store, not two.
        await all_of(self.store.waits and len(writes) > 1, *writes)

    async def seen_all(self, participants: list[Participant]) -> None:
        """:meth:`seen` for each (a slice of the sockets' heartbeat): their presence is
        written in one call to the store."""
        now = time.monotonic()
        marks: list[tuple[str, str]] = []
        touches: list[str] = []
        for participant in participants:
            mark, touch = self._note(participant, now, False)
            if mark:
                marks.append((participant.room_id, participant.participant_id))
            if touch:
                touches.append(participant.room_id)
        if marks:
            await self.store.mark_seen_many(marks, time.time(), self.settings.room_ttl)
        for room_id in touches:
            await self.store.touch_room(room_id, self.settings.room_ttl)

    def _note(self, participant: Participant, now: float, force: bool) -> tuple[bool, bool]:
        """Record the participant as here at ``now``; whether its presence mark and its
        room's expiry are due to be written."""
        if participant.room_ended or participant.room_id in self._ended:
            return False, False
        key = (participant.room_id, participant.participant_id)
        tracked = self._tracked.get(key)
        if tracked is None:
            tracked = self._tracked[key] = _Tracked(0.0, -1e9, Presence.JOINED)
        elif not force and now - tracked.seen < SEEN_AGAIN and tracked.state is Presence.CONNECTED:
            return False, False  # a busy participant needs no bookkeeping each time
        tracked.seen = now
        tracked.deadline = now + self.settings.grace_period
        if tracked.state is not Presence.CONNECTED:
            tracked.state = move(_label(key), tracked.state, Presence.CONNECTED)
        interval = self.settings.heartbeat_interval
        mark = force or now - tracked.marked >= interval / 2
        if mark:
            # Each mark counts from a point up to a quarter interval early: participants
            # that arrived together (a class, a load test) would otherwise all write at
            # the same moment, every time, and the store's queue would hold up the mail.
            tracked.marked = now - random.uniform(0, interval / 4)
        touch = force or now - self._touched.get(participant.room_id, 0.0) >= TOUCH_EVERY
        if touch:
            self._touched[participant.room_id] = now - random.uniform(0, TOUCH_EVERY / 2)
        return mark, touch

    def went_away(self, participant: Participant) -> None:
        """The participant's socket closed: it has the grace period to come back."""
        key = (participant.room_id, participant.participant_id)
        tracked = self._tracked.get(key)
        if tracked is None:
            return
        tracked.deadline = time.monotonic() + self.settings.grace_period
        tracked.state = move(_label(key), tracked.state, Presence.AWAY)

    def forget(self, key: Key) -> None:
        """The participant left (or was reported gone): stop watching it."""
        tracked = self._tracked.pop(key, None)
        if tracked is not None:
            move(_label(key), tracked.state, Presence.LEFT)

    def room_ended(self, room_id: str) -> None:
        now = time.monotonic()
        self._ended[room_id] = now
        for ended_id in [r for r, at in self._ended.items() if now - at > ENDED_RETENTION]:
            del self._ended[ended_id]
        for key in [k for k in self._tracked if k[0] == room_id]:
            self.forget(key)

    async def _watch(self) -> None:
        tick = min(1.0, self.settings.grace_period / 5)
        while True:
            await asyncio.sleep(tick)
            try:
                await self.check()
            except StoreUnavailable:
                logger.warning("presence check skipped: store unavailable")
            except Exception:
                logger.exception("presence check failed")

    async def check(self) -> None:
        """Hand participants gone longer than the grace period to ``on_gone``.

        Judged from the store, where every process marks whom it sees: a participant whose
        process died is still found, by any process that runs this.
        """
        grace = self.settings.grace_period
        now = time.monotonic()
        stale = now - self.settings.room_ttl  # such rooms have expired from the store too
        for room_id in [r for r, at in self._touched.items() if at < stale]:
            del self._touched[room_id]
        # What this process has not seen for the grace period may live on elsewhere: it
        # only stops being tracked here.
        for key in [k for k, t in self._tracked.items() if t.deadline <= now]:
            del self._tracked[key]
        cutoff = time.time() - grace
        for room_id, participant_id in await self.store.unseen_since(cutoff, CHECK_BATCH):
            await self.store.forget_seen(room_id, participant_id)
            room = await self.store.get_room(room_id)
            if room is None or room.ended:
                continue
            last = (await self.store.last_seen(room_id)).get(participant_id)
            if last is None or last >= cutoff:
                continue  # removed from the room already, or seen again meanwhile
            self.forget((room_id, participant_id))
            logger.info("room %s: %s gone past the grace period", room_id, participant_id)
            await self.on_gone(room_id, participant_id)


CHECK_BATCH = 200
"""Participants handled per check (once a second): a backlog drains over a few checks."""


def _label(key: Key) -> str:
    return f"room {key[0]}: {key[1]}"
