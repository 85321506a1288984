"""The room's chat: pushed to everyone in the room, kept for those who join late."""

from __future__ import annotations

import time

from .. import ids
from ..config import Settings
from ..metrics import Metrics
from ..presence import PresenceTracker
from ..ratelimit import Limit, RateLimits
from ..rooms import (
    CHAT_HISTORY,
    CHAT_HISTORY_BYTES,
    HOST_ID,
    Event,
    Participant,
    chat_text,
    display_name,
)
from ..store import Message, Store
from .mail import Mail


class Chat:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        mail: Mail,
        metrics: Metrics,
        presence: PresenceTracker,
        rate_limits: RateLimits | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.mail = mail
        self.metrics = metrics
        self.presence = presence
        self.rate_limits = rate_limits

    async def post(self, sender: Participant, text: str, name: str | None) -> Message:
        """Send a chat message to everyone in the room (the sender too) and keep it."""
        text, name = chat_text(text), display_name(name, sender)
        if self.rate_limits is not None:
            await self.rate_limits.hit(Limit.CHAT, sender.room_id, sender.participant_id)
        message: Message = {
            "type": Event.CHAT.value,
            "id": ids.new_token()[:12],
            "from": sender.participant_id,
            "name": name,
            "text": text,
            "at": round(time.time(), 3),
        }
        room_id = sender.room_id
        await self.store.add_chat(
            room_id, message, CHAT_HISTORY, CHAT_HISTORY_BYTES, self.settings.room_ttl
        )
        for participant_id in [HOST_ID, *(await self.store.get_viewers(room_id))]:
            await self.mail.deliver_chat(room_id, participant_id, message)
        self.metrics.messages.inc("chat")
        await self.presence.seen(sender)
        return message

    async def history(self, participant: Participant) -> list[Message]:
        await self.presence.seen(participant)
        return await self.store.chat_history(participant.room_id)
