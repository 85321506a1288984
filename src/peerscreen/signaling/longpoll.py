"""Reading mailboxes over HTTP: what is there now, or the first mail within ``wait``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from ..config import Settings
from ..errors import forbidden, room_ended
from ..presence import PresenceTracker
from ..rooms import Participant, Signal
from ..store import Listener, Message, Store
from ..store.base import ROOM_OFFER
from .access import ensure_present

logger = logging.getLogger("peerscreen.longpoll")


class LongPoll:
    """The REST readers of mailboxes, each able to wait for mail (``wait=``)."""

    def __init__(self, settings: Settings, store: Store, presence: PresenceTracker) -> None:
        self.settings = settings
        self.store = store
        self.presence = presence
        self.draining = False
        self.waiting = 0  # requests waiting for mail now

    def drain(self) -> None:
        """The server is stopping: every waiting reader returns what it has, now."""
        self.draining = True
        self.store.notifier.wake_all()

    async def receive(
        self, participant: Participant, after: int, acked: int, wait: float
    ) -> list[Message]:
        """Messages after ``after``, waiting up to ``wait`` seconds for the first one."""

        async def read() -> list[Message]:
            return await self.store.read(
                participant.room_id, participant.participant_id, after, acked
            )

        return await self._wait_for(participant, read, wait, [participant.participant_id])

    async def take(
        self, participant: Participant, types: Iterable[str], wait: float
    ) -> list[Message]:
        """Remove and return waiting messages of the given types (the original design's
        GET endpoints), waiting up to ``wait`` seconds for one."""
        wanted = list(types)
        names = [participant.participant_id]
        takes_room_offer = False
        if not participant.is_host and Signal.CANDIDATE in wanted:
            taker = await self.store.room_offer_taker(participant.room_id)
            takes_room_offer = taker == participant.participant_id
            if takes_room_offer:
                names.append(ROOM_OFFER)

        async def read() -> list[Message]:
            taken = await self.store.take(participant.room_id, participant.participant_id, wanted)
            if takes_room_offer:
                early = await self.store.take(participant.room_id, ROOM_OFFER, wanted)
                taken = early + taken
            return taken

        return await self._wait_for(participant, read, wait, names, end_with_room=True)

    async def take_offer(self, viewer: Participant, wait: float) -> Message | None:
        """The newest offer for this viewer, or the room offer if there is one."""
        if viewer.is_host:
            raise forbidden("Only viewers receive offers.")

        async def read() -> list[Message]:
            offers = await self.store.take(viewer.room_id, viewer.participant_id, ["offer"])
            if offers:
                return offers[-1:]
            room_offer = await self.store.take_room_offer(viewer.room_id, viewer.participant_id)
            if room_offer is not None:
                # Candidates the host sent before anyone took the offer are this viewer's.
                logger.info(
                    "room %s: viewer %s took the room offer", viewer.room_id, viewer.participant_id
                )
                return [room_offer]
            return []

        found = await self._wait_for(
            viewer, read, wait, [viewer.participant_id, ROOM_OFFER], end_with_room=True
        )
        return found[0] if found else None

    async def _wait_for(
        self,
        participant: Participant,
        read: Callable[[], Awaitable[list[Message]]],
        wait: float,
        names: list[str],
        end_with_room: bool = False,
    ) -> list[Message]:
        await self.presence.seen(participant)
        deadline = time.monotonic() + wait
        with self.store.listen(participant.room_id, *names) as listener:
            self.waiting += 1
            try:
                return await self._wait_loop(participant, read, listener, deadline, end_with_room)
            finally:
                self.waiting -= 1

    async def _wait_loop(
        self,
        participant: Participant,
        read: Callable[[], Awaitable[list[Message]]],
        listener: Listener,
        deadline: float,
        end_with_room: bool,
    ) -> list[Message]:
        while True:
            found = await read()
            remaining = deadline - time.monotonic()
            if found or remaining <= 0 or self.draining:
                return found
            # Waking at least once per heartbeat keeps a long-polling participant
            # marked present.
            woken = await listener.wait(min(remaining, self.settings.heartbeat_interval))
            if woken and not self.draining:
                # Woken with nothing to read: the viewer may have been removed, or the
                # room lost or ended. A take of signals ends with the room (410 at once)
                # rather than hold the request to its deadline.
                room = await ensure_present(self.store, participant)
                if end_with_room and room.ended:
                    raise room_ended(room.end_reason)
            await self.presence.seen(participant)
