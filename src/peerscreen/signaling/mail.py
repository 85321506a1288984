"""Mail: signaling messages and server events put in participants' mailboxes."""

from __future__ import annotations

import logging
from typing import Any

from ..config import Settings
from ..errors import ErrorCode, PeerscreenError, room_not_found
from ..metrics import Metrics
from ..presence import PresenceTracker
from ..protocol import IceCandidate, SessionDescription, signal_payload
from ..ratelimit import RateLimits
from ..rooms import Participant, Signal, require_addressee, route, viewer_not_found
from ..store import MailBudget, Message, Refusal, Store
from ..store.base import ROOM_OFFER

logger = logging.getLogger("peerscreen.mail")


class Mail:
    """Routes signals between participants and delivers the server's own events."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        presence: PresenceTracker,
        rate_limits: RateLimits | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.presence = presence
        self.rate_limits = rate_limits
        self.budget = budget_for(settings)

    async def send(
        self,
        sender: Participant,
        signal: Signal,
        to: str | None,
        payload: dict[str, Any],
        *,
        mark_seen: bool = True,
    ) -> int | None:
        """Deliver a signal to its addressee's mailbox; its sequence number there.

        ``None`` for the room offer of the single-viewer flow, which has no addressee.
        ``mark_seen=False`` leaves the sender's presence alone: a socket's heartbeat
        marks its participant present already.
        """
        room_id = sender.room_id
        if self.rate_limits is not None:
            self.rate_limits.take_signal(room_id, sender.participant_id)
        # A host's addressee must be a viewer: the store checks that as it appends.
        to_viewer = sender.is_host and to is not None
        recipient = route(sender, signal, to, to_viewer)
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
            seq = await self._append(room_id, recipient, message, to_viewer)
        self.metrics.messages.inc(signal.value)
        if mark_seen:
            await self.presence.seen(sender)
        return seq

    async def send_addressed(
        self,
        sender: Participant,
        kind: str,
        to: str | None,
        desc: SessionDescription | None,
        candidate: IceCandidate | None,
        *,
        mark_seen: bool = True,
    ) -> int | None:
        """A signal sent on the room API (REST or WebSocket): the field its kind needs
        must be there, and the host must name the viewer."""
        try:
            payload = signal_payload(kind, desc, candidate)
        except ValueError as exc:
            raise PeerscreenError(ErrorCode.VALIDATION_ERROR, str(exc)) from exc
        require_addressee(sender, to)
        return await self.send(sender, Signal(kind), to, payload, mark_seen=mark_seen)

    async def _append(
        self, room_id: str, recipient: str, message: Message, to_viewer: bool = False
    ) -> int:
        result = await self.store.append(
            room_id, recipient, message, self.settings.room_ttl, self.budget, to_viewer
        )
        if result is Refusal.NO_VIEWER:
            raise viewer_not_found(recipient)
        if isinstance(result, Refusal):
            raise _refused(result)
        return result

    async def notify(
        self, room_id: str, recipient: str, message: Message, ttl: float | None = None
    ) -> None:
        """Put a server event (``viewer-joined``, ``room-ended``...) in a mailbox. Events
        are never refused: they are few, and a participant must not miss them."""
        await self.store.append(
            room_id,
            recipient,
            message,
            ttl if ttl is not None else self.settings.room_ttl,
            None,
        )

    async def deliver_chat(self, room_id: str, recipient: str, message: Message) -> None:
        """Put a chat message in a mailbox, within its budget; over it, the message is
        dropped for that recipient (who still finds it in the room's chat history)."""
        result = await self.store.append(
            room_id, recipient, message, self.settings.room_ttl, self.budget
        )
        if isinstance(result, Refusal):
            logger.debug(
                "room %s: no room for chat in the mailbox of %s (%s)", room_id, recipient, result
            )


def budget_for(settings: Settings) -> MailBudget:
    """The mailbox budget the settings give: one sender may fill a quarter of a mailbox."""
    return MailBudget(
        messages=settings.max_pending_messages,
        bytes=settings.max_pending_bytes,
        sender_messages=max(1, settings.max_pending_messages // SENDER_SHARE),
        sender_bytes=settings.max_pending_bytes // SENDER_SHARE,
        room_bytes=settings.max_room_pending_bytes,
    )


SENDER_SHARE = 4
"""One sender may hold at most 1/SENDER_SHARE of a recipient's mailbox."""


def _refused(refusal: Refusal) -> PeerscreenError:
    if refusal is Refusal.NO_ROOM:
        return room_not_found()
    message = {
        Refusal.MAILBOX: "The recipient has too many undelivered messages; it may be gone.",
        Refusal.SENDER_SHARE: "You have too many undelivered messages waiting for this "
        "recipient; send more once it has read them.",
        Refusal.ROOM: "This room has too many undelivered messages; some participants may be gone.",
    }[refusal]
    return PeerscreenError(ErrorCode.MAILBOX_FULL, message)
