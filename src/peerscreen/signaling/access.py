"""Who may do what: tokens, passcodes and the host's lock."""

from __future__ import annotations

import logging
from dataclasses import replace

from .. import ids
from ..config import Settings
from ..errors import ErrorCode, PeerscreenError, forbidden, invalid, room_ended, unauthorized
from ..errors import room_not_found as room_not_found_error
from ..ratelimit import Limit, RateLimits
from ..rooms import HOST_ID, Participant, Role
from ..store import RoomRecord, Store, ViewerRecord
from ..tasks import both

logger = logging.getLogger("peerscreen.access")


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


async def ensure_present(store: Store, participant: Participant) -> RoomRecord:
    """Is the participant still in a room that still exists: 404 when the room is gone
    (a Redis that came back empty), 403 when the viewer left or was removed. The room.

    Asked by readers woken with nothing to read, on every transport.
    """
    room = await store.get_room(participant.room_id)
    if room is None:
        raise room_not_found_error()
    if not participant.is_host and not await store.has_viewer(
        participant.room_id, participant.participant_id
    ):
        raise forbidden("You are no longer in this room (you left or were removed).")
    return room


def checked_room(room: RoomRecord | None, allow_ended: bool) -> RoomRecord:
    """The room, if there is one to use: 404 when there is none, 410 when it ended."""
    if room is None:
        raise room_not_found_error()
    if room.ended and not allow_ended:
        raise room_ended(room.end_reason)
    return room


class Access:
    """Checks tokens and passcodes, and keeps the host's access settings."""

    def __init__(self, settings: Settings, store: Store, rate_limits: RateLimits | None) -> None:
        self.settings = settings
        self.store = store
        self.rate_limits = rate_limits

    async def load_room(self, room_id: str, *, allow_ended: bool = False) -> RoomRecord:
        return checked_room(await self.store.get_room(room_id), allow_ended)

    async def authenticate(
        self, room_id: str, token: str | None, *, allow_ended: bool = False
    ) -> Participant:
        """The participant a token belongs to; 401 for a wrong or missing token.

        Tokens read ``<participant id>.<secret>``: the id says which digest to compare
        against, and the comparison is constant-time.
        """
        participant_id = token.partition(".")[0] if token else ""
        viewers: dict[str, ViewerRecord] = {}
        if ids.is_viewer_id(participant_id):
            room_record, viewers = await both(
                self.store.waits, self.store.get_room(room_id), self.store.get_viewers(room_id)
            )
            room = checked_room(room_record, allow_ended)
        else:
            room = await self.load_room(room_id, allow_ended=allow_ended)
        if not token:
            raise unauthorized("This call needs a token: 'Authorization: Bearer <token>'.")
        if participant_id == HOST_ID:
            if ids.token_matches(token, room.host_token_hash):
                return Participant(room_id, HOST_ID, Role.HOST, room.ended)
        elif ids.is_viewer_id(participant_id):
            viewer = viewers.get(participant_id)
            if viewer is not None:
                if ids.token_matches(token, viewer.token_hash):
                    return Participant(room_id, participant_id, Role.VIEWER, room.ended)
            else:
                # Only the departed viewer's own token learns that it left: a wrong one
                # gets the same 401 whether or not the viewer id ever existed.
                departed = await self.store.departed_token_hash(room_id, participant_id)
                if departed is not None and ids.token_matches(token, departed):
                    if room.ended:
                        raise room_ended(room.end_reason)
                    raise forbidden("You are no longer in this room (you left or were removed).")
        raise unauthorized("Invalid token for this room.")

    async def admit(self, room: RoomRecord, passcode: str | None, client: str) -> None:
        """May a new viewer join: the room is open and the passcode, if any, is right.

        ``client`` is the caller's address: wrong passcodes are counted against it.
        """
        if room.locked:
            raise room_locked()
        if room.passcode_hash is None:
            return
        if not passcode:
            raise PeerscreenError(
                ErrorCode.PASSCODE_REQUIRED, "This room needs a passcode. Ask the host for it."
            )
        limits = self.rate_limits
        if limits is not None:  # once over the limit, even the right passcode waits
            await limits.check(Limit.PASSCODE, room.room_id, client)
        if not ids.passcode_matches(passcode, room.room_id, room.passcode_hash):
            if limits is not None:
                await limits.hit(Limit.PASSCODE, room.room_id, client)
            raise PeerscreenError(
                ErrorCode.PASSCODE_WRONG, "Wrong passcode. Check it with the host."
            )

    async def set_passcode(self, room: RoomRecord, passcode: str) -> RoomRecord:
        digest = ids.hash_passcode(passcode, room.room_id)
        await self.store.set_access(room.room_id, room.locked, digest)
        return replace(room, passcode_hash=digest)

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
