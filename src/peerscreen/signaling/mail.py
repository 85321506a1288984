"""Mail: signaling messages and server events put in participants' mailboxes."""

from __future__ import annotations

import logging
from typing import Any

from ..config import Settings
from ..errors import ErrorCode, PeerscreenError
from ..metrics import Metrics
from ..presence import PresenceTracker
from ..protocol import IceCandidate, SessionDescription, signal_payload
from ..rooms import Participant, Signal, require_addressee, route
from ..store import Message, Store
from ..store.base import ROOM_OFFER

logger = logging.getLogger("peerscreen.mail")


class Mail:
    """Routes signals between participants and delivers the server's own events."""

    def __init__(
        self, settings: Settings, store: Store, metrics: Metrics, presence: PresenceTracker
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.presence = presence

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
        await self.presence.seen(sender)
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

    async def notify(
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
