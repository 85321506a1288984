"""Room and participant rules, free of I/O.

Who may send what to whom, room capacity, presence and expiry are decided here, so the
rules can be tested without a server or a store, and every transport applies the same ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from .errors import ErrorCode, PeerscreenError, forbidden

logger = logging.getLogger("peerscreen.rooms")

HOST_ID = "host"
"""Participant id of a room's host; viewers have generated ids (see :mod:`peerscreen.ids`)."""

ENDED_RETENTION = 300.0
"""Seconds an ended room is kept so that viewers that were away can still read its end."""


class Role(StrEnum):
    HOST = "host"
    VIEWER = "viewer"


class Signal(StrEnum):
    """Signaling messages a participant sends to another one."""

    OFFER = "offer"
    ANSWER = "answer"
    CANDIDATE = "candidate"


class Event(StrEnum):
    """Messages the server itself puts in mailboxes."""

    CHAT = "chat"
    VIEWER_JOINED = "viewer-joined"
    VIEWER_LEFT = "viewer-left"
    ROOM_ENDED = "room-ended"


@dataclass(frozen=True, slots=True)
class Participant:
    """An authenticated caller: who it is and in which room."""

    room_id: str
    participant_id: str
    role: Role
    room_ended: bool = False
    """Set when authenticated in an ended room: it may read its last messages, nothing more."""

    @property
    def is_host(self) -> bool:
        return self.role is Role.HOST


def route(sender: Participant, signal: Signal, to: str | None, to_is_viewer: bool) -> str | None:
    """The participant id a signal goes to, or raise if the sender may not send it.

    ``to_is_viewer`` says whether ``to`` names a viewer of the room (the caller looks).

    Offers flow from the host to one viewer and answers from a viewer to the host; ICE
    candidates flow both ways along the same pairs. A host offer or candidate with no
    addressee (``None`` is returned) belongs to the original single-viewer flow's room
    offer, taken by the first viewer that asks for it.
    """
    if sender.is_host:
        if signal is Signal.ANSWER:
            raise forbidden("Only viewers send answers; the host sends offers.")
        if to is None:
            return None
        if not to_is_viewer:
            raise PeerscreenError(
                ErrorCode.VIEWER_NOT_FOUND, f"Viewer {to} is not in this room (it may have left)."
            )
        return to
    if signal is Signal.OFFER:
        raise forbidden("Only the host sends offers.")
    if to not in (None, HOST_ID, sender.participant_id):
        raise forbidden("Viewers send signaling messages to the host only.")
    return HOST_ID


def require_addressee(sender: Participant, to: str | None) -> None:
    """On the room API (REST messages and WebSocket) the host names the viewer every time;
    only the classic endpoints keep the unaddressed room offer."""
    if sender.is_host and to is None:
        raise PeerscreenError(ErrorCode.INVALID_REQUEST, "'to' is required: name the viewer.")


def check_viewer_claim(
    sender: Participant, claimed_role: str | None, viewer_id: str | None
) -> None:
    """The role and viewer id a REST caller names must be its own (the token decides)."""
    if claimed_role is not None and claimed_role != sender.role.value:
        raise forbidden(f"This token belongs to a {sender.role.value}, not a {claimed_role}.")
    if not sender.is_host and viewer_id is not None and viewer_id != sender.participant_id:
        raise forbidden("A viewer may act only as itself.")


def room_full(max_viewers: int) -> PeerscreenError:
    return PeerscreenError(
        ErrorCode.ROOM_FULL,
        f"Room is full ({max_viewers} viewers). Ask the host to let you in later.",
    )


def check_capacity(viewer_count: int, max_viewers: int) -> None:
    """Raise ``room_full`` when one more viewer would exceed the cap.

    Stores apply the same cap atomically when they add the viewer; this is the rule.
    """
    if viewer_count >= max_viewers:
        raise room_full(max_viewers)


class Presence(StrEnum):
    """Where a participant is, judged from when it was last seen."""

    JOINED = "joined"
    CONNECTED = "connected"
    AWAY = "away"
    LEFT = "left"


_PRESENCE_MOVES: dict[Presence, frozenset[Presence]] = {
    Presence.JOINED: frozenset({Presence.CONNECTED, Presence.AWAY, Presence.LEFT}),
    Presence.CONNECTED: frozenset({Presence.AWAY, Presence.LEFT}),
    Presence.AWAY: frozenset({Presence.CONNECTED, Presence.LEFT}),
    Presence.LEFT: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


def move(label: str, old: Presence, new: Presence) -> Presence:
    """Move ``label`` from ``old`` to ``new``, refusing moves the lifecycle forbids."""
    if new is old:
        return new
    if new not in _PRESENCE_MOVES[old]:
        raise IllegalTransition(f"{label} is {old.value} and cannot become {new.value}")
    logger.info("%s: %s -> %s", label, old.value, new.value)
    return new


def presence_at(last_seen: float | None, now: float, live_window: float, grace: float) -> Presence:
    """Presence from the last time a participant was seen.

    ``live_window`` is how stale a connected participant's mark can be (a heartbeat
    timeout); past ``grace`` it counts as gone.
    """
    if last_seen is None:
        return Presence.JOINED
    age = now - last_seen
    if age <= live_window:
        return Presence.CONNECTED
    if age <= grace:
        return Presence.AWAY
    return Presence.LEFT


CHAT_HISTORY = 200
"""Chat messages a room keeps for those who join late."""

_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10))


def chat_text(text: str) -> str:
    """Chat text as it is kept and shown: control characters other than tab and newline
    dropped (the page renders it as text, so markup needs no escaping here)."""
    return text.translate(_CONTROL)


def display_name(name: str | None, participant: Participant) -> str:
    """The name shown with a message: the one chosen, else the role."""
    cleaned = " ".join((name or "").translate(_CONTROL).split())
    if cleaned:
        return cleaned
    return "Host" if participant.is_host else f"Viewer {participant.participant_id[1:5]}"


def clamp_wait(wait: float | None, max_wait: float) -> float:
    """Long-poll wait in seconds; the client asked for ``wait``."""
    if wait is None:
        return 0.0
    if wait < 0 or wait > max_wait:
        raise PeerscreenError(
            ErrorCode.INVALID_REQUEST, f"wait must be between 0 and {max_wait:g} seconds."
        )
    return wait
