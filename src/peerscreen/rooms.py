"""Room and participant rules, free of I/O.

Who may send what to whom, room capacity, presence and expiry are decided here, so the
rules can be tested without a server or a store, and every transport applies the same ones.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
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
    HOST_AWAY = "host-away"  # the host's socket closed: it may come back within the grace
    HOST_BACK = "host-back"
    AUDIENCE = "audience"  # to viewers: how many watch now
    HOST_PAUSED = "host-paused"  # the host stopped sending its picture for now
    HOST_RESUMED = "host-resumed"
    BROADCAST = "broadcast"  # the room's media path changes (state: publish, live, mesh)
    VIEWER_SWITCHED = "viewer-switched"  # to the host: a viewer's broadcast stream renders


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
            raise viewer_not_found(to)
        return to
    if signal is Signal.OFFER:
        raise forbidden("Only the host sends offers.")
    if to not in (None, HOST_ID, sender.participant_id):
        raise forbidden("Viewers send signaling messages to the host only.")
    return HOST_ID


SFU_ID = "sfu"
"""The addressee of signals for the room's media server (broadcast rooms)."""


def check_sfu_signal(sender: Participant, signal: Signal) -> None:
    """Who may send what to the media server: the host publishes (its offer, its
    candidates); a viewer subscribes (its answer to the server's offer, its candidates)."""
    if sender.is_host and signal is Signal.ANSWER:
        raise forbidden("The host publishes to the media server with an offer, not an answer.")
    if not sender.is_host and signal is Signal.OFFER:
        raise forbidden("The media server makes the viewer's offer; answer it.")


def viewer_not_found(viewer_id: str) -> PeerscreenError:
    return PeerscreenError(
        ErrorCode.VIEWER_NOT_FOUND, f"Viewer {viewer_id} is not in this room (it may have left)."
    )


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

CHAT_HISTORY_BYTES = 64 * 1024
"""Bytes of chat a room keeps at most (JSON text): long messages leave fewer kept."""

# Characters that cannot be shown, or change how the text around them is shown: C0 and
# C1 controls (but tab and newline), format characters such as bidi overrides and
# zero-width spaces (but the joiner emoji sequences need), surrogates, private use, and
# line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_KEPT = frozenset({"\t", "\n", "\u200d"})
_HOST_WORD = re.compile(r"\bhost\b")


def visible(text: str) -> str:
    """``text`` without the characters that cannot be shown (see above)."""
    return "".join(
        c for c in text if c in _KEPT or unicodedata.category(c) not in _HIDDEN_CATEGORIES
    )


def chat_text(text: str) -> str:
    """Chat text as it is kept and shown, or a 422 when nothing visible is left (the page
    renders it as text, so markup needs no escaping here)."""
    cleaned = visible(text).strip()
    if not cleaned:
        raise PeerscreenError(
            ErrorCode.VALIDATION_ERROR, "text: The message has no visible characters."
        )
    return cleaned


def display_name(name: str | None, participant: Participant) -> str:
    """The name shown with a message: the one chosen, else the role.

    A viewer may not pass for the host: names that say "host" are the host's alone.
    """
    cleaned = " ".join(visible(name or "").split())
    if not cleaned:
        return "Host" if participant.is_host else f"Viewer {participant.participant_id[1:5]}"
    if not participant.is_host and _HOST_WORD.search(
        unicodedata.normalize("NFKC", cleaned).casefold()
    ):
        raise PeerscreenError(
            ErrorCode.VALIDATION_ERROR, "name: Only the host's name may say 'host'."
        )
    return cleaned


def clamp_wait(wait: float | None, max_wait: float) -> float:
    """Long-poll wait in seconds; the client asked for ``wait``."""
    if wait is None:
        return 0.0
    if not math.isfinite(wait) or wait < 0 or wait > max_wait:
        raise PeerscreenError(
            ErrorCode.INVALID_REQUEST, f"wait must be between 0 and {max_wait:g} seconds."
        )
    return wait
