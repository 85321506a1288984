"""The store interface: rooms, viewers, mailboxes and presence, with expiry.

Each participant has a mailbox: an ordered queue of messages addressed to it, numbered by
a per-mailbox sequence that never goes back. Readers ask for what comes after the last
number they saw, which both delivers in order and acknowledges what came before, so a
reconnecting client resumes without loss or repetition.

Backends must behave identically; ``tests/unit/test_store_contract.py`` holds them to it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, NamedTuple, Protocol

from pydantic_core import from_json, to_json

Message = dict[str, Any]


class Stored(NamedTuple):
    """A message as its mailbox stored it: its number there, its type, and its JSON text,
    which is what a socket sends. Stores hand it to the readers they wake, so a message
    is encoded once, when stored, and never decoded on its way out."""

    seq: int
    type: str
    text: bytes


_SEQ_PREFIX = b'{"seq":'
_TYPE_PREFIX = b',"type":"'


def stored_from_text(text: bytes) -> Stored:
    """A stored message from its JSON text, which both stores begin with its number and
    type (``{"seq":12,"type":"candidate",...``); parsed whole if it does not."""
    if text.startswith(_SEQ_PREFIX):
        comma = text.find(b",", len(_SEQ_PREFIX))
        if comma > 0 and text.startswith(_TYPE_PREFIX, comma):
            start = comma + len(_TYPE_PREFIX)
            end = text.find(b'"', start)
            digits = text[len(_SEQ_PREFIX) : comma]
            if end > 0 and digits.isdigit():
                return Stored(int(digits), text[start:end].decode(), text)
    message = from_json(text)
    return Stored(message["seq"], message["type"], text)


def stored_from_message(message: Message) -> Stored:
    """A message read back from a store, ready to send."""
    return Stored(message["seq"], message["type"], to_json(message))


DEPARTED_KEPT = 1000
"""Departed viewers a room remembers (see :meth:`Store.departed_token_hash`)."""

ROOM_OFFER = "offer"
"""Listener name of a room's single-viewer offer (no participant has this id)."""


@dataclass(frozen=True, slots=True)
class RoomRecord:
    room_id: str
    host_token_hash: str
    created_at: float
    max_viewers: int
    ended: bool = False
    end_reason: str | None = None
    locked: bool = False
    paused: bool = False
    passcode_hash: str | None = None
    media_node: str | None = None
    """The Janus a broadcast room's media goes through; None while it is a mesh."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ViewerRecord:
    viewer_id: str
    token_hash: str
    joined_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MailBudget:
    """What one more message must fit in: the recipient's mailbox, the sender's share of
    it, and the room's mailboxes together. Sizes are of the stored JSON text.

    Every stored message counts; only messages appended with a budget can be refused
    (server events such as ``room-ended`` are appended with none, and never dropped).
    """

    messages: int
    bytes: int
    sender_messages: int
    sender_bytes: int
    room_bytes: int


class Refusal(StrEnum):
    """Why :meth:`Store.append` did not store a message."""

    NO_ROOM = "no_room"
    NO_VIEWER = "no_viewer"  # the recipient had to be a viewer of the room, and is not
    MAILBOX = "mailbox"  # the recipient's mailbox holds its most messages or bytes
    SENDER_SHARE = "sender_share"  # this sender holds its share of that mailbox
    ROOM = "room"  # the room's mailboxes together hold their most bytes


class AddViewerResult(StrEnum):
    """Outcome of :meth:`Store.add_viewer` (the caller turns failures into errors)."""

    ADDED = "added"
    NO_ROOM = "no_room"
    ENDED = "ended"
    FULL = "full"
    LOCKED = "locked"


class Listener:
    """Wakes one waiting reader when a message reaches the mailbox it listens to.

    Register before reading so a message that lands between the read and the wait still
    wakes the reader: the event stays set until the next :meth:`wait`.
    """

    __slots__ = ("_event", "_keys", "_notifier")

    def __init__(self, notifier: Notifier, keys: list[tuple[str, str]]) -> None:
        self._notifier = notifier
        self._keys = keys
        self._event = asyncio.Event()

    def __enter__(self) -> Listener:
        for room_id, name in self._keys:
            self._notifier.subscribe(room_id, name, self)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for room_id, name in self._keys:
            self._notifier.unsubscribe(room_id, name, self)

    def wake(self, message: Stored | None = None) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """True if woken, False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


class Wakeable(Protocol):
    def wake(self, message: Stored | None = None) -> None:
        """The mailbox changed; ``message`` is the one just stored there, when known (a
        reader that has sent everything before it can send it without reading)."""


class Notifier:
    """In-process registry of what to wake when a mailbox changes, keyed by
    (room id, participant id): :class:`Listener` objects, or sockets that deliver."""

    def __init__(self) -> None:
        # Nearly every mailbox has one reader: it is stored bare, and a set only when a
        # second one comes (a set costs a couple of hundred bytes per idle socket).
        self._listeners: dict[tuple[str, str], Wakeable | set[Wakeable]] = {}
        # Told when a mailbox gets its first local reader and loses its last: a store
        # shared by processes listens for other processes' messages to exactly those.
        self.on_first: Callable[[str, str], None] | None = None
        self.on_last: Callable[[str, str], None] | None = None

    def listen(self, room_id: str, *names: str) -> Listener:
        return Listener(self, [(room_id, name) for name in names])

    def subscribe(self, room_id: str, name: str, target: Wakeable) -> None:
        """Wake ``target`` for every change of the mailbox until :meth:`unsubscribe`."""
        key = (room_id, name)
        present = self._listeners.get(key)
        if present is None:
            self._listeners[key] = target
            if self.on_first is not None:
                self.on_first(room_id, name)
        elif isinstance(present, set):
            present.add(target)
        elif present is not target:
            self._listeners[key] = {present, target}

    def unsubscribe(self, room_id: str, name: str, target: Wakeable) -> None:
        key = (room_id, name)
        present = self._listeners.get(key)
        if present is target:
            del self._listeners[key]
        elif isinstance(present, set):
            present.discard(target)
            if len(present) == 1:
                self._listeners[key] = next(iter(present))
            elif not present:
                del self._listeners[key]
        else:
            return
        if key not in self._listeners and self.on_last is not None:
            self.on_last(room_id, name)

    def has_listener(self, room_id: str, participant_id: str) -> bool:
        return (room_id, participant_id) in self._listeners

    def notify(self, room_id: str, participant_id: str, message: Stored | None = None) -> None:
        """Wake the mailbox's readers; ``message`` is the one just stored, if any."""
        present = self._listeners.get((room_id, participant_id))
        if present is None:
            return
        if isinstance(present, set):
            for listener in list(present):
                listener.wake(message)
        else:
            present.wake(message)

    def wake_all(self) -> None:
        """Wake every reader (after notifications may have been missed)."""
        for present in list(self._listeners.values()):
            for listener in list(present) if isinstance(present, set) else [present]:
                listener.wake()

    def listener_count(self) -> int:
        return sum(len(s) if isinstance(s, set) else 1 for s in self._listeners.values())


class Store(ABC):
    """Where rooms live. All methods raise :class:`~peerscreen.errors.StoreUnavailable`
    when the backing service cannot be reached."""

    kind: str = "abstract"
    waits: bool = True
    """Whether calls may wait on I/O. A store whose calls never do (the in-memory one)
    lets the socket handle a message without a task (see tasks.run_eagerly)."""

    def __init__(self) -> None:
        self.notifier = Notifier()

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect and start background work."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop background work and disconnect."""

    def listen(self, room_id: str, *names: str) -> Listener:
        """A listener woken when a named mailbox of the room changes.

        Names are participant ids, or :data:`ROOM_OFFER` for the room offer.
        """
        return self.notifier.listen(room_id, *names)

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot serve requests."""

    # rooms
    @abstractmethod
    async def create_room(self, room: RoomRecord, ttl: float) -> bool:
        """Store a new room; False if the id is taken."""

    @abstractmethod
    async def get_room(self, room_id: str) -> RoomRecord | None: ...

    @abstractmethod
    async def end_room(self, room_id: str, reason: str, retention: float) -> bool:
        """Mark the room ended and shorten its life to ``retention``.

        True for exactly one caller: the one that ended it.
        """

    @abstractmethod
    async def set_paused(self, room_id: str, paused: bool) -> None:
        """Record whether the host has paused sharing (viewers joining then are told)."""

    @abstractmethod
    async def set_media_node(self, room_id: str, node: str | None) -> None:
        """Move the room to broadcast through ``node`` (a Janus URL), or back to mesh."""

    @abstractmethod
    async def set_access(self, room_id: str, locked: bool, passcode_hash: str | None) -> None:
        """Lock or unlock the room to new viewers, and set or clear its passcode."""

    @abstractmethod
    async def touch_room(self, room_id: str, ttl: float) -> None:
        """Push every key of the room ``ttl`` seconds into the future (activity)."""

    # viewers
    @abstractmethod
    async def add_viewer(
        self, room_id: str, viewer: ViewerRecord, max_viewers: int, ttl: float
    ) -> AddViewerResult:
        """Add a viewer atomically, refusing it past ``max_viewers``, in an ended room or in
        a locked one."""

    @abstractmethod
    async def remove_viewer(self, room_id: str, viewer_id: str) -> bool:
        """Remove a viewer and its mailbox, waking its readers, and remember its token
        digest as departed; True for exactly one caller."""

    @abstractmethod
    async def departed_token_hash(self, room_id: str, viewer_id: str) -> str | None:
        """The token digest of a viewer that left or was removed (the last
        :data:`DEPARTED_KEPT` of the room), so its own token can be told apart from a
        wrong one."""

    @abstractmethod
    async def get_viewers(self, room_id: str) -> dict[str, ViewerRecord]: ...

    @abstractmethod
    async def has_viewer(self, room_id: str, viewer_id: str) -> bool: ...

    # mailboxes
    @abstractmethod
    async def append(
        self,
        room_id: str,
        recipient: str,
        message: Message,
        ttl: float,
        budget: MailBudget | None,
        to_viewer: bool = False,
    ) -> int | Refusal:
        """Add a message to a mailbox; its sequence number, or why it was refused.

        The stored message gets a ``seq`` field. Its sender is its ``from`` field (server
        events have none); with no ``budget`` it is stored whatever the mailbox holds.
        With ``to_viewer`` the recipient must be a viewer of the room (checked in the same
        step, so a signal costs one call to the store).
        """

    @abstractmethod
    async def read(self, room_id: str, recipient: str, after: int, acked: int) -> list[Message]:
        """Messages numbered above ``after``, in order, after dropping those up to ``acked``.

        ``acked <= after``: a socket may have sent messages its client has not yet
        confirmed; they stay until confirmed so a reconnect can send them again.
        """

    @abstractmethod
    async def acknowledge(self, room_id: str, recipient: str, acked: int) -> None:
        """Drop the messages numbered up to ``acked``: their reader confirmed them."""

    @abstractmethod
    async def take(self, room_id: str, recipient: str, types: Iterable[str]) -> list[Message]:
        """Remove and return the waiting messages of the given types, in order."""

    @abstractmethod
    async def last_seq(self, room_id: str, recipient: str) -> int:
        """The number of the newest message ever put in the mailbox (0: none)."""

    # the original design's room offer: one offer, taken by the first viewer to ask
    @abstractmethod
    async def put_room_offer(self, room_id: str, message: Message, ttl: float) -> None:
        """Store the room offer (replacing any, forgetting who took the last one) and wake
        :data:`ROOM_OFFER` listeners."""

    @abstractmethod
    async def take_room_offer(self, room_id: str, viewer_id: str) -> Message | None:
        """Remove and return the room offer, recording ``viewer_id`` as the one who took it."""

    @abstractmethod
    async def room_offer_taker(self, room_id: str) -> str | None:
        """The viewer that took the current room offer, if any."""

    # chat history
    @abstractmethod
    async def add_chat(
        self, room_id: str, message: Message, keep: int, keep_bytes: int, ttl: float
    ) -> None:
        """Keep a chat message in the room's history, dropping the oldest beyond the last
        ``keep`` messages or ``keep_bytes`` bytes of JSON text."""

    @abstractmethod
    async def chat_history(self, room_id: str) -> list[Message]:
        """The kept chat messages, oldest first."""

    # rate limits
    @abstractmethod
    async def count_calls(self, key: str, amount: int, period: float, take: bool) -> int | None:
        """Calls per key over a moving window, counted for every process that shares the
        store: None when one more is within ``amount`` per ``period`` seconds (and, with
        ``take``, it is counted), else the whole seconds until one would be."""

    # presence
    @abstractmethod
    async def mark_seen(self, room_id: str, participant_id: str, at: float, ttl: float) -> None:
        """Record that the participant was seen at unix time ``at``."""

    async def mark_seen_many(self, seen: list[tuple[str, str]], at: float, ttl: float) -> None:
        """:meth:`mark_seen` for each (room id, participant id); a store shared by
        processes writes them together."""
        for room_id, participant_id in seen:
            await self.mark_seen(room_id, participant_id, at, ttl)

    @abstractmethod
    async def last_seen(self, room_id: str) -> dict[str, float]:
        """When each participant of the room was last seen (unix time)."""

    @abstractmethod
    async def unseen_since(self, before: float, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` (room id, participant id) pairs, of any room, last seen before
        unix time ``before``: every process sees every participant here, so a room whose
        host was on a process that died is still ended by another."""

    @abstractmethod
    async def forget_seen(self, room_id: str, participant_id: str) -> None:
        """Drop the participant from :meth:`unseen_since` (until it is seen again)."""
