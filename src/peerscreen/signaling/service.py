"""Rooms and their participants: create, join, leave, end, and the room's status."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from .. import ids
from ..config import Settings
from ..errors import ErrorCode, PeerscreenError, forbidden, room_ended, unauthorized
from ..errors import room_not_found as room_not_found_error
from ..media.broadcast import Broadcasts
from ..media.nodes import MediaNodes
from ..metrics import Metrics
from ..presence import PresenceTracker
from ..ratelimit import RateLimits
from ..rooms import (
    ENDED_RETENTION,
    HOST_ID,
    Event,
    Participant,
    Presence,
    Role,
    display_name,
    presence_at,
    room_full,
)
from ..store import AddViewerResult, Message, RoomRecord, Store, ViewerRecord
from ..tasks import all_of
from .access import Access, room_locked
from .chat import Chat
from .longpoll import LongPoll
from .mail import Mail

logger = logging.getLogger("peerscreen.service")


class Signaling:
    """Rooms and participants; the parts that act on them are attributes:
    :attr:`access`, :attr:`mail`, :attr:`polls` and :attr:`chat`."""

    def __init__(
        self, settings: Settings, store: Store, rate_limits: RateLimits | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.rate_limits = rate_limits
        self.metrics = Metrics()
        self.presence = PresenceTracker(settings, store, self._participant_gone)
        self.access = Access(settings, store, rate_limits)
        self.mail = Mail(settings, store, self.metrics, self.presence, rate_limits)
        self.polls = LongPoll(settings, store, self.presence)
        self.chat = Chat(settings, store, self.mail, self.metrics, self.presence, rate_limits)
        self.broadcasts = Broadcasts(settings, store, self.mail, MediaNodes(settings), self.metrics)

    async def start(self) -> None:
        await self.presence.start()

    async def stop(self) -> None:
        await self.presence.stop()
        await self.broadcasts.close()

    async def authenticate(
        self, room_id: str, token: str | None, *, allow_ended: bool = False
    ) -> Participant:
        """See :meth:`Access.authenticate`."""
        return await self.access.authenticate(room_id, token, allow_ended=allow_ended)

    async def load_room(self, room_id: str, *, allow_ended: bool = False) -> RoomRecord:
        return await self.access.load_room(room_id, allow_ended=allow_ended)

    async def create_room(self, passcode: str | None = None) -> tuple[RoomRecord, str]:
        """A new room and its host token; viewers need ``passcode`` if one is given."""
        token = f"{HOST_ID}.{ids.new_token()}"
        for _ in range(5):
            room = RoomRecord(
                room_id=ids.new_room_id(),
                host_token_hash=ids.hash_token(token),
                created_at=time.time(),
                max_viewers=self.settings.max_viewers,
            )
            if await self.store.create_room(room, self.settings.room_ttl):
                break
        else:  # 64 random bits colliding five times means the generator is broken
            raise RuntimeError("could not allocate a free room id")
        if passcode:
            room = await self.access.set_passcode(room, passcode)
        host = Participant(room.room_id, HOST_ID, Role.HOST)
        await self.presence.seen(host, force=True)
        self.metrics.rooms_created.inc()
        logger.info("room %s: created", room.room_id)
        return room, token

    async def join(
        self,
        room_id: str,
        passcode: str | None = None,
        client: str = "unknown",
        name: str | None = None,
    ) -> tuple[ViewerRecord, str]:
        """Add a viewer to the room; its record and token. The host is told.

        ``client`` is the caller's address: wrong passcodes are counted against it.
        """
        room = await self.load_room(room_id)
        await self.access.admit(room, passcode, client)
        viewer_id = ids.new_viewer_id()
        token = f"{viewer_id}.{ids.new_token()}"
        viewer = ViewerRecord(viewer_id, ids.hash_token(token), time.time())
        cap = self.broadcasts.viewer_cap(room)
        result = await self.store.add_viewer(room_id, viewer, cap, self.settings.room_ttl)
        if result is AddViewerResult.NO_ROOM:
            raise room_not_found_error()
        if result is AddViewerResult.ENDED:
            raise room_ended()
        if result is AddViewerResult.FULL:
            raise room_full(cap)
        if result is AddViewerResult.LOCKED:
            raise room_locked()
        participant = Participant(room_id, viewer_id, Role.VIEWER)
        joined: Message = {"type": Event.VIEWER_JOINED, "viewerId": viewer_id}
        if name:
            joined["name"] = display_name(name, participant)
        # Different mailboxes: written together, one round trip to a shared store.
        await all_of(
            self.store.waits,
            self.presence.seen(participant, force=True),
            self.mail.notify(room_id, HOST_ID, joined),
            self._tell_audience(room_id),
        )
        if room.paused:
            await self.mail.notify(room_id, viewer_id, {"type": Event.HOST_PAUSED})
        if self.broadcasts.enabled:
            await self.broadcasts.joined(room, viewer_id)
            count = len(await self.store.get_viewers(room_id))
            await self.broadcasts.viewers_changed(room, count)
        self.metrics.viewers_joined.inc()
        logger.info("room %s: viewer %s joined", room_id, viewer_id)
        return viewer, token

    async def end_room(self, room_id: str, reason: str) -> bool:
        """End the room and tell everyone in it; False if it had already ended."""
        room = await self.store.get_room(room_id) if self.broadcasts.enabled else None
        if not await self.store.end_room(room_id, reason, ENDED_RETENTION):
            return False
        if room is not None and room.media_node is not None:
            await self.broadcasts.ended(room)
        self.metrics.rooms_ended.labels(reason).inc()
        logger.info("room %s: ended (%s)", room_id, reason)
        message = {"type": Event.ROOM_ENDED, "reason": reason}
        viewers = await self.store.get_viewers(room_id)
        for participant_id in [HOST_ID, *viewers]:
            await self.mail.notify(room_id, participant_id, message, ttl=ENDED_RETENTION)
        self.presence.room_ended(room_id)
        return True

    async def remove_viewer(self, actor: Participant, viewer_id: str, reason: str) -> None:
        """A viewer leaves, or the host removes it. The host is told."""
        if not actor.is_host and actor.participant_id != viewer_id:
            raise forbidden("A viewer can remove only itself; the host can remove anyone.")
        if not await self.store.remove_viewer(actor.room_id, viewer_id):
            raise PeerscreenError(ErrorCode.VIEWER_NOT_FOUND, f"Viewer {viewer_id} is not here.")
        await self._viewer_gone(actor.room_id, viewer_id, reason)

    async def _viewer_gone(self, room_id: str, viewer_id: str, reason: str) -> None:
        self.presence.forget((room_id, viewer_id))
        # Its stream from the media server stops now (the handle on this process; its
        # socket's process drops its own when the socket closes).
        await self.broadcasts.left(Participant(room_id, viewer_id, Role.VIEWER))
        logger.info("room %s: viewer %s left (%s)", room_id, viewer_id, reason)
        await self.mail.notify(
            room_id, HOST_ID, {"type": Event.VIEWER_LEFT, "viewerId": viewer_id, "reason": reason}
        )
        await self._tell_audience(room_id)

    async def room_info(self, room_id: str, token: str | None) -> dict[str, Any]:
        """What the original design's diagnostics reported, and each viewer's presence
        when the host asks."""
        room = await self.load_room(room_id, allow_ended=True)
        viewers = await self.store.get_viewers(room_id)
        seen = await self.store.last_seen(room_id)
        now = time.time()

        def presence_of(participant_id: str) -> Presence:
            # An ended room has nobody in it, whenever each was last seen.
            if room.ended:
                return Presence.LEFT
            return self._presence_of(seen.get(participant_id), now)

        host_presence = presence_of(HOST_ID)
        info: dict[str, Any] = {
            "roomId": room_id,
            "exists": True,
            "ended": room.ended,
            "hostPresence": host_presence.value,
            "hostPresent": host_presence is Presence.CONNECTED,
            "viewerCount": len(viewers),
            "maxViewers": self.broadcasts.viewer_cap(room),
            "full": len(viewers) >= self.broadcasts.viewer_cap(room),
            "locked": room.locked,
            "paused": room.paused,
            "path": "broadcast" if room.media_node else "mesh",
            "passcodeRequired": room.passcode_hash is not None,
            "expiresAt": now + self.settings.room_ttl,
            "viewers": None,
        }
        if token and token.partition(".")[0] == HOST_ID:
            if not ids.token_matches(token, room.host_token_hash):
                raise unauthorized("Invalid token for this room.")
            info["viewers"] = [
                {
                    "viewerId": v.viewer_id,
                    "presence": presence_of(v.viewer_id).value,
                    "joinedAt": v.joined_at,
                }
                for v in sorted(viewers.values(), key=lambda v: v.joined_at)
            ]
        return info

    def _presence_of(self, last_seen: float | None, now: float) -> Presence:
        return presence_at(
            last_seen, now, self.settings.heartbeat_timeout, self.settings.grace_period
        )

    # --- presence ------------------------------------------------------------------------

    async def seen(self, participant: Participant, *, force: bool = False) -> None:
        """The participant is here now (see :mod:`peerscreen.presence`)."""
        await self.presence.seen(participant, force=force)

    async def seen_all(self, participants: list[Participant]) -> None:
        """These participants are here now, written together (the sockets' heartbeat)."""
        await self.presence.seen_all(participants)

    async def set_paused(self, host: Participant, paused: bool) -> None:
        """The host pauses or resumes sharing; viewers are told (their picture stops)."""
        if not host.is_host:
            raise forbidden("Only the host can pause sharing.")
        room = await self.load_room(host.room_id)
        if room.paused == paused:
            return
        await self.store.set_paused(host.room_id, paused)
        event = Event.HOST_PAUSED if paused else Event.HOST_RESUMED
        await self._tell_viewers(host.room_id, {"type": event})
        logger.info("room %s: %s", host.room_id, "paused" if paused else "resumed")

    async def went_away(self, participant: Participant) -> None:
        """The participant's socket closed: it has the grace period to come back. When it
        is the host, viewers are told at once (their picture freezes now)."""
        self.presence.went_away(participant)
        if participant.is_host:
            await self._tell_viewers(participant.room_id, {"type": Event.HOST_AWAY})

    async def came_back(self, participant: Participant) -> None:
        """The participant opened a socket; for the host, viewers hear it is back."""
        if participant.is_host and not participant.room_ended:
            await self._tell_viewers(participant.room_id, {"type": Event.HOST_BACK})

    async def _tell_viewers(
        self, room_id: str, message: Message, viewers: Iterable[str] | None = None
    ) -> None:
        if viewers is None:
            viewers = await self.store.get_viewers(room_id)
        # One message to each mailbox: sent together, one round trip to a shared store.
        await all_of(
            self.store.waits,
            *(self.mail.notify(room_id, viewer_id, message) for viewer_id in viewers),
        )

    async def _tell_audience(self, room_id: str) -> None:
        """Every viewer hears how many watch now (after a join or a departure)."""
        viewers = await self.store.get_viewers(room_id)
        await self._tell_viewers(
            room_id, {"type": Event.AUDIENCE, "viewers": len(viewers)}, viewers
        )

    async def _participant_gone(self, room_id: str, participant_id: str) -> None:
        """Gone past the grace period: a host ends its room, a viewer leaves it."""
        if participant_id == HOST_ID:
            await self.end_room(room_id, "host-left")
        elif await self.store.remove_viewer(room_id, participant_id):
            await self._viewer_gone(room_id, participant_id, "timeout")
