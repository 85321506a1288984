"""The signaling service: the room rules applied to a store, shared by every transport.

REST, long-poll and WebSocket handlers are thin; each call comes here, so a message posted
over one transport reaches a participant listening on any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

from . import ids
from .config import Settings
from .errors import (
    ErrorCode,
    PeerscreenError,
    forbidden,
    invalid,
    room_ended,
    unauthorized,
)
from .errors import room_not_found as room_not_found_error
from .metrics import Metrics
from .presence import PresenceTracker
from .protocol import IceCandidate, SessionDescription, signal_payload
from .ratelimit import Limit, RateLimits
from .rooms import (
    CHAT_HISTORY,
    ENDED_RETENTION,
    HOST_ID,
    Event,
    Participant,
    Presence,
    Role,
    Signal,
    chat_text,
    display_name,
    presence_at,
    require_addressee,
    room_full,
    route,
)
from .store import AddViewerResult, Message, RoomRecord, Store, ViewerRecord
from .store.base import ROOM_OFFER

logger = logging.getLogger("peerscreen.service")


def room_locked() -> PeerscreenError:
    return PeerscreenError(
        ErrorCode.ROOM_LOCKED, "The host has locked this room: no new viewers for now."
    )


def parse_room_id(text: str) -> str:
    """The canonical room id, or a 400 that shows what a room code looks like."""
    room_id = ids.normalize_room_id(text)
    if room_id is None:
        raise invalid(
            "That is not a room code. Room codes look like k7dm-x9paq-3hrt "
            "(letters and digits, dashes optional)."
        )
    return room_id


class Signaling:
    """Rooms, participants and their mailboxes."""

    def __init__(
        self, settings: Settings, store: Store, rate_limits: RateLimits | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.rate_limits = rate_limits
        self.metrics = Metrics()
        self.presence = PresenceTracker(settings, store, self._participant_gone)

    async def start(self) -> None:
        await self.presence.start()

    async def stop(self) -> None:
        await self.presence.stop()

    # --- rooms -------------------------------------------------------------------------

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
            digest = ids.hash_passcode(passcode, room.room_id)
            await self.store.set_access(room.room_id, False, digest)
            room = replace(room, passcode_hash=digest)
        host = Participant(room.room_id, HOST_ID, Role.HOST)
        await self.seen(host, force=True)
        self.metrics.rooms_created.inc()
        logger.info("room %s: created", room.room_id)
        return room, token

    async def load_room(self, room_id: str, *, allow_ended: bool = False) -> RoomRecord:
        room = await self.store.get_room(room_id)
        if room is None:
            raise room_not_found_error()
        if room.ended and not allow_ended:
            raise room_ended()
        return room

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
        if room.locked:
            raise room_locked()
        if room.passcode_hash is not None:
            await self._check_passcode(room, passcode, client)
        viewer_id = ids.new_viewer_id()
        token = f"{viewer_id}.{ids.new_token()}"
        viewer = ViewerRecord(viewer_id, ids.hash_token(token), time.time())
        result = await self.store.add_viewer(
            room_id, viewer, room.max_viewers, self.settings.room_ttl
        )
        if result is AddViewerResult.NO_ROOM:
            raise room_not_found_error()
        if result is AddViewerResult.ENDED:
            raise room_ended()
        if result is AddViewerResult.FULL:
            raise room_full(room.max_viewers)
        if result is AddViewerResult.LOCKED:
            raise room_locked()
        participant = Participant(room_id, viewer_id, Role.VIEWER)
        await self.seen(participant, force=True)
        joined: Message = {"type": Event.VIEWER_JOINED, "viewerId": viewer_id}
        if name:
            joined["name"] = display_name(name, participant)
        await self._notify(room_id, HOST_ID, joined)
        self.metrics.viewers_joined.inc()
        logger.info("room %s: viewer %s joined", room_id, viewer_id)
        return viewer, token

    async def _check_passcode(self, room: RoomRecord, passcode: str | None, client: str) -> None:
        if not passcode:
            raise PeerscreenError(
                ErrorCode.PASSCODE_REQUIRED, "This room needs a passcode. Ask the host for it."
            )
        limits = self.rate_limits
        if limits is not None:  # once over the limit, even the right passcode waits
            await limits.check(Limit.PASSCODE, room.room_id, client)
        assert room.passcode_hash is not None
        if not ids.passcode_matches(passcode, room.room_id, room.passcode_hash):
            if limits is not None:
                await limits.hit(Limit.PASSCODE, room.room_id, client)
            raise PeerscreenError(
                ErrorCode.PASSCODE_WRONG, "Wrong passcode. Check it with the host."
            )

    async def set_access(
        self, host: Participant, locked: bool | None, passcode: str | None, clear_passcode: bool
    ) -> RoomRecord:
        """The host locks or unlocks the room, and sets or clears its passcode."""
        if not host.is_host:
            raise forbidden("Only the host can lock the room or change its passcode.")
        room = await self.load_room(host.room_id)
        digest = room.passcode_hash
        if clear_passcode:
            digest = None
        elif passcode is not None:
            digest = ids.hash_passcode(passcode, room.room_id)
        new_locked = room.locked if locked is None else locked
        await self.store.set_access(room.room_id, new_locked, digest)
        logger.info(
            "room %s: %s, %s",
            room.room_id,
            "locked" if new_locked else "open",
            "passcode set" if digest else "no passcode",
        )
        return await self.load_room(room.room_id)

    async def authenticate(
        self, room_id: str, token: str | None, *, allow_ended: bool = False
    ) -> Participant:
        """The participant a token belongs to; 401 for a wrong or missing token.

        Tokens read ``<participant id>.<secret>``: the id says which digest to compare
        against, and the comparison is constant-time.
        """
        room = await self.load_room(room_id, allow_ended=allow_ended)
        if not token:
            raise unauthorized("This call needs a token: 'Authorization: Bearer <token>'.")
        participant_id = token.partition(".")[0]
        if participant_id == HOST_ID:
            if ids.token_matches(token, room.host_token_hash):
                return Participant(room_id, HOST_ID, Role.HOST, room.ended)
        elif ids.is_viewer_id(participant_id):
            viewer = (await self.store.get_viewers(room_id)).get(participant_id)
            if viewer is None:
                if room.ended:
                    raise room_ended()
                raise forbidden("You are no longer in this room (you left or were removed).")
            if ids.token_matches(token, viewer.token_hash):
                return Participant(room_id, participant_id, Role.VIEWER, room.ended)
        raise unauthorized("Invalid token for this room.")

    async def end_room(self, room_id: str, reason: str) -> bool:
        """End the room and tell everyone in it; False if it had already ended."""
        if not await self.store.end_room(room_id, reason, ENDED_RETENTION):
            return False
        self.metrics.rooms_ended.labels(reason).inc()
        logger.info("room %s: ended (%s)", room_id, reason)
        message = {"type": Event.ROOM_ENDED, "reason": reason}
        viewers = await self.store.get_viewers(room_id)
        for participant_id in [HOST_ID, *viewers]:
            await self._notify(room_id, participant_id, message, ttl=ENDED_RETENTION)
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
        logger.info("room %s: viewer %s left (%s)", room_id, viewer_id, reason)
        await self._notify(
            room_id, HOST_ID, {"type": Event.VIEWER_LEFT, "viewerId": viewer_id, "reason": reason}
        )

    async def room_info(self, room_id: str, token: str | None) -> dict[str, Any]:
        """What the original design's diagnostics reported, and each viewer's presence
        when the host asks."""
        room = await self.load_room(room_id, allow_ended=True)
        viewers = await self.store.get_viewers(room_id)
        seen = await self.store.last_seen(room_id)
        now = time.time()
        host_presence = self._presence_of(seen.get(HOST_ID), now)
        info: dict[str, Any] = {
            "roomId": room_id,
            "exists": True,
            "ended": room.ended,
            "hostPresence": host_presence.value,
            "hostPresent": host_presence is Presence.CONNECTED,
            "viewerCount": len(viewers),
            "maxViewers": room.max_viewers,
            "full": len(viewers) >= room.max_viewers,
            "locked": room.locked,
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
                    "presence": self._presence_of(seen.get(v.viewer_id), now).value,
                    "joinedAt": v.joined_at,
                }
                for v in sorted(viewers.values(), key=lambda v: v.joined_at)
            ]
        return info

    def _presence_of(self, last_seen: float | None, now: float) -> Presence:
        return presence_at(
            last_seen, now, self.settings.heartbeat_timeout, self.settings.grace_period
        )

    # --- messages ------------------------------------------------------------------------

    async def send(
        self, sender: Participant, signal: Signal, to: str | None, payload: dict[str, Any]
    ) -> int | None:
        """Deliver a signal to its addressee's mailbox; its sequence number there.

        ``None`` for the room offer of the single-viewer flow, which has no addressee.
        """
        room_id = sender.room_id
        to_is_viewer = False
        if sender.is_host and to is not None:
            to_is_viewer = await self.store.has_viewer(room_id, to)
        recipient = route(sender, signal, to, to_is_viewer)
        message = {"type": signal.value, "from": sender.participant_id, **payload}
        ttl = self.settings.room_ttl
        if recipient is None:
            if signal is Signal.OFFER:
                await self.store.put_room_offer(room_id, message, ttl)
                seq = None
            else:  # a candidate for whoever takes (or took) the room offer
                taker = await self.store.room_offer_taker(room_id)
                seq = await self._append(room_id, taker or ROOM_OFFER, message)
        else:
            seq = await self._append(room_id, recipient, message)
        self.metrics.messages.labels(signal.value).inc()
        await self.seen(sender)
        return seq

    async def send_addressed(
        self,
        sender: Participant,
        kind: str,
        to: str | None,
        desc: SessionDescription | None,
        candidate: IceCandidate | None,
    ) -> int | None:
        """A signal sent on the room API (REST or WebSocket): the field its kind needs
        must be there, and the host must name the viewer."""
        try:
            payload = signal_payload(kind, desc, candidate)
        except ValueError as exc:
            raise PeerscreenError(ErrorCode.VALIDATION_ERROR, str(exc)) from exc
        require_addressee(sender, to)
        return await self.send(sender, Signal(kind), to, payload)

    async def _append(self, room_id: str, recipient: str, message: Message) -> int:
        seq = await self.store.append(
            room_id, recipient, message, self.settings.room_ttl, self.settings.max_pending_messages
        )
        if seq is None:
            raise PeerscreenError(
                ErrorCode.MAILBOX_FULL,
                "The recipient has too many undelivered messages; it may be gone.",
            )
        return seq

    async def _notify(
        self, room_id: str, recipient: str, message: Message, ttl: float | None = None
    ) -> None:
        """Put a server event in a mailbox; a full mailbox drops it rather than failing
        the call that caused it."""
        seq = await self.store.append(
            room_id,
            recipient,
            message,
            ttl if ttl is not None else self.settings.room_ttl,
            self.settings.max_pending_messages,
        )
        if seq is None:
            logger.warning(
                "room %s: mailbox of %s full, dropped %s", room_id, recipient, message["type"]
            )

    async def receive(
        self, participant: Participant, after: int, acked: int, wait: float
    ) -> list[Message]:
        """Messages after ``after``, waiting up to ``wait`` seconds for the first one."""

        async def read() -> list[Message]:
            return await self.store.read(
                participant.room_id, participant.participant_id, after, acked
            )

        return await self._long_poll(participant, read, wait, [participant.participant_id])

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

        return await self._long_poll(participant, read, wait, names)

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

        found = await self._long_poll(viewer, read, wait, [viewer.participant_id, ROOM_OFFER])
        return found[0] if found else None

    async def _long_poll(
        self,
        participant: Participant,
        read: Callable[[], Awaitable[list[Message]]],
        wait: float,
        names: list[str],
    ) -> list[Message]:
        await self.seen(participant)
        deadline = time.monotonic() + wait
        with self.store.listen(participant.room_id, *names) as listener:
            while True:
                found = await read()
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                # Waking at least once per heartbeat keeps a long-polling participant
                # marked present.
                await listener.wait(min(remaining, self.settings.heartbeat_interval))
                await self.seen(participant)

    # --- chat ----------------------------------------------------------------------------

    async def chat(self, sender: Participant, text: str, name: str | None) -> Message:
        """Send a chat message to everyone in the room (the sender too) and keep it."""
        if self.rate_limits is not None:
            await self.rate_limits.hit(Limit.CHAT, sender.room_id, sender.participant_id)
        message: Message = {
            "type": Event.CHAT.value,
            "id": ids.new_token()[:12],
            "from": sender.participant_id,
            "name": display_name(name, sender),
            "text": chat_text(text),
            "at": round(time.time(), 3),
        }
        room_id = sender.room_id
        await self.store.add_chat(room_id, message, CHAT_HISTORY, self.settings.room_ttl)
        for participant_id in [HOST_ID, *(await self.store.get_viewers(room_id))]:
            await self._notify(room_id, participant_id, message)
        self.metrics.messages.labels("chat").inc()
        await self.seen(sender)
        return message

    async def chat_history(self, participant: Participant) -> list[Message]:
        await self.seen(participant)
        return await self.store.chat_history(participant.room_id)

    # --- presence ------------------------------------------------------------------------

    async def seen(self, participant: Participant, *, force: bool = False) -> None:
        """The participant is here now (see :mod:`peerscreen.presence`)."""
        await self.presence.seen(participant, force=force)

    def went_away(self, participant: Participant) -> None:
        self.presence.went_away(participant)

    async def _participant_gone(self, room_id: str, participant_id: str) -> None:
        """Gone past the grace period: a host ends its room, a viewer leaves it."""
        if participant_id == HOST_ID:
            await self.end_room(room_id, "host-left")
        elif await self.store.remove_viewer(room_id, participant_id):
            await self._viewer_gone(room_id, participant_id, "timeout")
