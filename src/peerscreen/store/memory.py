"""In-memory store: the default, for one server process. Nothing to install or run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pydantic_core import from_json, to_json

from ..tasks import stop_task
from .base import (
    DEPARTED_KEPT,
    ROOM_OFFER,
    AddViewerResult,
    MailBudget,
    Message,
    Refusal,
    RoomRecord,
    Store,
    Stored,
    ViewerRecord,
)
from .windows import CallWindows

SWEEP_INTERVAL = 5.0


@dataclass(slots=True)
class _Mailbox:
    """A participant's mail, kept as JSON text with the fields the store looks at.

    Not as dictionaries: mail waits until the client acknowledges it (tens of seconds),
    long enough to reach the collector's oldest generation, and thousands of message
    dictionaries there made every full collection walk them. Text, numbers and lists of
    them are objects the collector does not track.
    """

    # Lists, not deques: mailboxes hold a handful of messages, and an empty deque costs
    # half a kilobyte per participant.
    texts: list[bytes] = field(default_factory=list)  # each message's JSON text
    seqs: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    senders_of: list[str | None] = field(default_factory=list)
    last_seq: int = 0
    size: int = 0
    # sender -> [messages, bytes] it holds here
    senders: dict[str, list[int]] = field(default_factory=dict)

    def add(self, text: bytes, seq: int, kind: str, sender: str | None) -> None:
        self.texts.append(text)
        self.seqs.append(seq)
        self.types.append(kind)
        self.senders_of.append(sender)
        self.size += len(text)

    def drop(self, index: int, room: _Room) -> None:
        """Forget the message at ``index`` and what it counted for."""
        size = len(self.texts.pop(index))
        self.seqs.pop(index)
        self.types.pop(index)
        sender = self.senders_of.pop(index)
        self.size -= size
        room.pending -= size
        if sender is not None:
            held = self.senders[sender]
            held[0] -= 1
            held[1] -= size
            if not held[0]:
                del self.senders[sender]

    def drop_acked(self, acked: int, room: _Room) -> None:
        seqs = self.seqs
        while seqs and seqs[0] <= acked:
            self.drop(0, room)

    def after(self, seq: int) -> list[Message]:
        return [from_json(text) for s, text in zip(self.seqs, self.texts, strict=True) if s > seq]


@dataclass(slots=True)
class _Room:
    record: RoomRecord
    expires_at: float
    viewers: dict[str, ViewerRecord] = field(default_factory=dict)
    mailboxes: dict[str, _Mailbox] = field(default_factory=dict)
    room_offer: Message | None = None
    room_offer_taker: str | None = None
    seen: dict[str, float] = field(default_factory=dict)
    chat: list[Message] = field(default_factory=list)
    chat_sizes: list[int] = field(default_factory=list)
    pending: int = 0  # bytes in all mailboxes
    departed: dict[str, str] = field(default_factory=dict)  # viewer id -> token digest


class MemoryStore(Store):
    """Rooms in a dict; expired rooms are dropped on access and by a periodic sweep."""

    kind = "memory"
    waits = False

    def __init__(self) -> None:
        super().__init__()
        self._rooms: dict[str, _Room] = {}
        self._seen: dict[tuple[str, str], float] = {}
        self._calls = CallWindows()
        self._sweeper: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="memory-store-sweeper")

    async def close(self) -> None:
        await stop_task(self._sweeper)
        self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.sweep()

    def sweep(self) -> int:
        """Drop expired rooms; the number dropped."""
        now = time.monotonic()
        expired = [rid for rid, room in self._rooms.items() if room.expires_at <= now]
        for rid in expired:
            del self._rooms[rid]
        return len(expired)

    def _room(self, room_id: str) -> _Room | None:
        room = self._rooms.get(room_id)
        if room is not None and room.expires_at <= time.monotonic():
            del self._rooms[room_id]
            return None
        return room

    async def ping(self) -> None:
        return None

    async def create_room(self, room: RoomRecord, ttl: float) -> bool:
        if self._room(room.room_id) is not None:
            return False
        self._rooms[room.room_id] = _Room(record=room, expires_at=time.monotonic() + ttl)
        return True

    async def get_room(self, room_id: str) -> RoomRecord | None:
        room = self._room(room_id)
        return room.record if room is not None else None

    async def end_room(self, room_id: str, reason: str, retention: float) -> bool:
        room = self._room(room_id)
        if room is None or room.record.ended:
            return False
        room.record = replace(room.record, ended=True, end_reason=reason)
        room.expires_at = min(room.expires_at, time.monotonic() + retention)
        return True

    async def set_paused(self, room_id: str, paused: bool) -> None:
        room = self._room(room_id)
        if room is not None:
            room.record = replace(room.record, paused=paused)

    async def set_media_node(self, room_id: str, node: str | None) -> None:
        room = self._room(room_id)
        if room is not None:
            room.record = replace(room.record, media_node=node)

    async def set_access(self, room_id: str, locked: bool, passcode_hash: str | None) -> None:
        room = self._room(room_id)
        if room is not None:
            room.record = replace(room.record, locked=locked, passcode_hash=passcode_hash)

    async def touch_room(self, room_id: str, ttl: float) -> None:
        room = self._room(room_id)
        if room is not None and not room.record.ended:
            room.expires_at = max(room.expires_at, time.monotonic() + ttl)

    async def add_viewer(
        self, room_id: str, viewer: ViewerRecord, max_viewers: int, ttl: float
    ) -> AddViewerResult:
        room = self._room(room_id)
        if room is None:
            return AddViewerResult.NO_ROOM
        if room.record.ended:
            return AddViewerResult.ENDED
        if room.record.locked:
            return AddViewerResult.LOCKED
        if len(room.viewers) >= max_viewers:
            return AddViewerResult.FULL
        room.viewers[viewer.viewer_id] = viewer
        return AddViewerResult.ADDED

    async def remove_viewer(self, room_id: str, viewer_id: str) -> bool:
        room = self._room(room_id)
        if room is None or viewer_id not in room.viewers:
            return False
        gone = room.viewers.pop(viewer_id)
        room.departed[viewer_id] = gone.token_hash
        if len(room.departed) > DEPARTED_KEPT:
            del room.departed[next(iter(room.departed))]
        box = room.mailboxes.pop(viewer_id, None)
        if box is not None:
            room.pending -= box.size
        room.seen.pop(viewer_id, None)
        self.notifier.notify(room_id, viewer_id)
        return True

    async def departed_token_hash(self, room_id: str, viewer_id: str) -> str | None:
        room = self._room(room_id)
        return room.departed.get(viewer_id) if room is not None else None

    async def get_viewers(self, room_id: str) -> dict[str, ViewerRecord]:
        room = self._room(room_id)
        return dict(room.viewers) if room is not None else {}

    async def has_viewer(self, room_id: str, viewer_id: str) -> bool:
        room = self._room(room_id)
        return room is not None and viewer_id in room.viewers

    async def append(
        self,
        room_id: str,
        recipient: str,
        message: Message,
        ttl: float,
        budget: MailBudget | None,
        to_viewer: bool = False,
    ) -> int | Refusal:
        room = self._room(room_id)
        if room is None:
            return Refusal.NO_ROOM
        if to_viewer and recipient not in room.viewers:
            return Refusal.NO_VIEWER
        box = room.mailboxes.get(recipient)
        if box is None:
            box = room.mailboxes[recipient] = _Mailbox()
        # The number first, then the type, as the Redis store writes them (Stored).
        stored = {"seq": box.last_seq + 1, **message}
        text = to_json(stored)
        size = len(text)  # the JSON text's, as the Redis store counts it
        sender = message.get("from")
        held = box.senders.get(sender) if sender is not None else None
        if budget is not None:
            if len(box.seqs) >= budget.messages or box.size + size > budget.bytes:
                return Refusal.MAILBOX
            if held is not None and (
                held[0] >= budget.sender_messages or held[1] + size > budget.sender_bytes
            ):
                return Refusal.SENDER_SHARE
            if room.pending + size > budget.room_bytes:
                return Refusal.ROOM
        box.last_seq += 1
        box.add(text, box.last_seq, stored["type"], sender)
        room.pending += size
        if sender is not None:
            if held is None:
                held = box.senders[sender] = [0, 0]
            held[0] += 1
            held[1] += size
        self.notifier.notify(room_id, recipient, Stored(box.last_seq, stored["type"], text))
        return box.last_seq

    async def read(self, room_id: str, recipient: str, after: int, acked: int) -> list[Message]:
        room = self._room(room_id)
        box = room.mailboxes.get(recipient) if room is not None else None
        if room is None or box is None:
            return []
        box.drop_acked(acked, room)
        if not box.seqs or box.seqs[-1] <= after:
            return []
        return box.after(after)

    async def acknowledge(self, room_id: str, recipient: str, acked: int) -> None:
        room = self._room(room_id)
        box = room.mailboxes.get(recipient) if room is not None else None
        if room is None or box is None:
            return
        box.drop_acked(acked, room)

    async def take(self, room_id: str, recipient: str, types: Iterable[str]) -> list[Message]:
        room = self._room(room_id)
        box = room.mailboxes.get(recipient) if room is not None else None
        if room is None or box is None:
            return []
        wanted = set(types)
        taken = [from_json(t) for t, k in zip(box.texts, box.types, strict=True) if k in wanted]
        for index in range(len(box.types) - 1, -1, -1):
            if box.types[index] in wanted:
                box.drop(index, room)
        return taken

    async def last_seq(self, room_id: str, recipient: str) -> int:
        room = self._room(room_id)
        box = room.mailboxes.get(recipient) if room is not None else None
        return box.last_seq if box is not None else 0

    async def put_room_offer(self, room_id: str, message: Message, ttl: float) -> None:
        room = self._room(room_id)
        if room is not None:
            room.room_offer = message
            room.room_offer_taker = None
            self.notifier.notify(room_id, ROOM_OFFER)

    async def take_room_offer(self, room_id: str, viewer_id: str) -> Message | None:
        room = self._room(room_id)
        if room is None or room.room_offer is None:
            return None
        offer, room.room_offer = room.room_offer, None
        room.room_offer_taker = viewer_id
        return offer

    async def room_offer_taker(self, room_id: str) -> str | None:
        room = self._room(room_id)
        return room.room_offer_taker if room is not None else None

    async def add_chat(
        self, room_id: str, message: Message, keep: int, keep_bytes: int, ttl: float
    ) -> None:
        room = self._room(room_id)
        if room is None:
            return
        room.chat.append(message)
        room.chat_sizes.append(len(to_json(message)))
        total = sum(room.chat_sizes)
        while len(room.chat) > keep or (total > keep_bytes and len(room.chat) > 1):
            total -= room.chat_sizes.pop(0)
            room.chat.pop(0)

    async def chat_history(self, room_id: str) -> list[Message]:
        room = self._room(room_id)
        return list(room.chat) if room is not None else []

    async def count_calls(self, key: str, amount: int, period: float, take: bool) -> int | None:
        return self._calls.count(key, amount, period, take)

    async def mark_seen(self, room_id: str, participant_id: str, at: float, ttl: float) -> None:
        room = self._room(room_id)
        if room is not None:
            room.seen[participant_id] = at
            self._seen[(room_id, participant_id)] = at

    async def last_seen(self, room_id: str) -> dict[str, float]:
        room = self._room(room_id)
        return dict(room.seen) if room is not None else {}

    async def unseen_since(self, before: float, limit: int) -> list[tuple[str, str]]:
        found = []
        for key, at in self._seen.items():
            if at < before:
                found.append(key)
                if len(found) >= limit:
                    break
        return found

    async def forget_seen(self, room_id: str, participant_id: str) -> None:
        self._seen.pop((room_id, participant_id), None)
