"""The participant WebSocket: push delivery of its mailbox, and a way to send signals.

The socket runs on peerscreen's own WebSocket protocol (:mod:`peerscreen.websocket`),
not through ASGI: a signaling server holds thousands of mostly idle sockets, and each
layer costs kilobytes per socket and microseconds per message. An idle connection here
is its protocol object and one :class:`Connection`, with no task: a message from the
client starts a short task only when handling it must wait, mail that arrives in order
is written at once, and one ticker per process pings every socket and drops the silent
ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from typing import Any, cast

from pydantic import ValidationError
from pydantic_core import from_json, to_json

from ..errors import (
    ErrorCode,
    PeerscreenError,
    StoreUnavailable,
    ended_message,
    from_validation,
)
from ..ids import is_viewer_id
from ..protocol import (
    MAX_BODY_BYTES,
    AckMessage,
    ClientMessage,
    PingMessage,
    WsChat,
    WsSignal,
    client_message_adapter,
    hello_adapter,
)
from ..ratelimit import Limit, RateLimits
from ..rooms import HOST_ID, SFU_ID, Event, Participant, Signal
from ..signaling import Signaling, parse_room_id
from ..signaling.access import ensure_present
from ..store import Stored
from ..store.base import stored_from_message
from ..tasks import both, run_eagerly, stop_task
from ..websocket import State, WebSocketProtocol
from .heartbeat import Heartbeat

logger = logging.getLogger("peerscreen.socket")

PATH = re.compile(r"^/api/rooms/([^/]{1,64})/ws$")

HEARTBEAT_SLICE = 0.025
"""Seconds between heartbeat ticks; each tick pings its share of the sockets."""
PRESENCE_EVERY = 5
"""Ticks whose sockets' presence is written in one store call."""
PING = to_json({"type": "ping"})
PONG = '{"type":"pong"}'
"""A pong as the page sends it; other spellings take the general path."""
SIGNALS = frozenset(("offer", "answer", "candidate"))

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_BAD_MESSAGE = 4400
CLOSE_GONE = 4403
CLOSE_ROOM_GONE = 4404
CLOSE_HEARTBEAT = 4408
CLOSE_REPLACED = 4409
CLOSE_ENDED = 4410


ARRIVED_KEPT = 64
"""Messages a socket holds from their wake-ups; past that it reads from the store."""

INBOX_HELD = 16
"""Client messages a socket holds while an earlier one is handled; past that the server
reads no more from it until they are done."""


class _Closing(Exception):
    def __init__(self, code: int, reason: str, *, finished: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.finished = finished  # the participant left or the room ended: no grace period


def _room_lost() -> _Closing:
    return _Closing(
        CLOSE_ROOM_GONE,
        "This room no longer exists (the server lost it). Start or join a new one.",
        finished=True,
    )


class Connection:
    """One authenticated socket of one participant (the handler of its WebSocket)."""

    __slots__ = (
        "_arrived",
        "_busy",
        "_delivering",
        "_dirty",
        "_eager",
        "_held",
        "_inbox",
        "_must_read",
        "_trimmed",
        "acked",
        "close_code",
        "finished",
        "heartbeat_slot",
        "key",
        "last_active",
        "last_heard",
        "participant",
        "sent",
        "service",
        "sockets",
        "ws",
    )

    def __init__(
        self, ws: WebSocketProtocol, sockets: Sockets, participant: Participant, resume: int
    ) -> None:
        self.heartbeat_slot = -1  # set when registered (Sockets)
        self.ws = ws
        self.sockets = sockets
        self.service = sockets.service
        self.participant = participant
        self.key = (participant.room_id, participant.participant_id)
        self.sent = resume  # newest sequence number sent on this socket
        self.acked = resume  # newest the client confirmed
        self.last_heard = time.monotonic()  # any frame, pongs included
        self.last_active = 0.0  # a message other than a pong or an ack
        self.close_code: int | None = None
        self.finished = False
        self._delivering = False
        self._dirty = False
        # Messages handed over with their wake-up, not sent yet: sent as they are when
        # they follow what was sent, with no read from the store.
        self._arrived: list[Stored] | None = None
        self._must_read = True  # something changed that only a read shows
        self._held = False  # mail waits because the client does not read
        self._trimmed = resume  # the store dropped what is numbered up to this
        self._busy = False  # a client message is being handled
        self._eager = not sockets.service.store.waits  # handled without a task
        self._inbox: deque[str] | None = None  # client messages waiting for it

    # --- the WebSocket's handler ----------------------------------------------------------

    def opened(self) -> None:
        pass  # connections are made for sockets already open

    def received(self, text: str) -> None:
        self.last_heard = now = time.monotonic()
        self.sockets.heartbeat.poke(now)
        if text == PONG:
            return  # the heartbeat's answer, the commonest message: hearing it is all
        if self._busy:
            if self._inbox is None:
                self._inbox = deque()
            self._inbox.append(text)
            if len(self._inbox) >= INBOX_HELD:
                self.ws.pause_reading()
            return
        self._busy = True
        if self._eager:
            run_eagerly(self._process(text))
        else:
            asyncio.get_running_loop().create_task(self._process(text))

    def writable(self) -> None:
        if self._held:
            self._held = False
            self.wake()

    def closed(self) -> None:
        if self.close_code is None:
            self.close_code = CLOSE_NORMAL
        self.sockets._closed(self)

    # --- sending ------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send_text(to_json(message))

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.ws.close(code, reason)

    def wake(self, message: Stored | None = None) -> None:
        """Mail arrived: send it now when it follows what was sent, else start a task
        that reads the mailbox, unless one runs."""
        # The commonest case, sent at once: the next message, and nothing else pending
        # (the general path below does the same, with more to check; and closes the
        # socket after room-ended).
        if (
            message is not None
            and message.seq == self.sent + 1
            and self._arrived is None
            and not (self._must_read or self._delivering or self.ws.writing_paused)
            and self.close_code is None
            and message.type != Event.ROOM_ENDED
        ):
            self.ws.send_text(message.text)
            self.sent = message.seq
            return
        if message is None:
            self._must_read = True
        elif self._arrived is None:
            self._arrived = [message]
        elif len(self._arrived) < ARRIVED_KEPT:
            self._arrived.append(message)
        else:
            self._must_read = True  # a client this far behind reads from the store
        if self._delivering:
            self._dirty = True
            return
        if self.close_code is not None:
            return
        if not self._must_read and not self.ws.writing_paused:
            ready = self._take_arrived()
            if ready is not None:
                try:
                    self._send_all(ready)
                except _Closing as closing:
                    self.finished = self.finished or closing.finished
                    self.close(closing.code, closing.reason)
                return
        self._delivering = True
        asyncio.get_running_loop().create_task(self._deliver())

    async def _deliver(self) -> None:
        try:
            while True:
                self._dirty = False
                await self._deliver_mail()
                if not self._dirty or self.close_code is not None:
                    # No await between this check and the flag: a wake() after it starts
                    # a new task instead of being lost.
                    self._delivering = False
                    return
        except _Closing as closing:
            self._delivering = False
            self.finished = self.finished or closing.finished
            self.close(closing.code, closing.reason)
        except StoreUnavailable:
            self._delivering = False  # retried at the next wake-up or heartbeat
        except Exception:
            self._delivering = False
            logger.exception("socket %s: delivery failed", self.key)
            self.close(CLOSE_INTERNAL, "Internal error")

    def _take_arrived(self) -> list[Stored] | None:
        """The arrived messages, if they follow what was sent without a gap."""
        arrived, self._arrived = self._arrived, None
        if arrived is None or self._must_read:
            return None
        if len(arrived) > 1:
            arrived.sort()  # by number: tuples
        expected = self.sent + 1
        ready: list[Stored] = []
        for message in arrived:
            seq = message.seq
            if seq < expected:
                continue  # sent already
            if seq > expected:
                return None  # one is missing (or still on its way): read them all
            ready.append(message)
            expected += 1
        return ready

    async def _deliver_mail(self) -> None:
        if self.ws.writing_paused:
            # The client does not read: its mail waits in the store (which bounds it),
            # not in the server's buffers, and is read when it reads again.
            self._held = True
            self._must_read = True
            self._arrived = None
            return
        participant = self.participant
        store = self.service.store
        ready = self._take_arrived()
        if ready is not None:
            self._send_all(ready)
            return
        self._must_read = False
        self._arrived = None
        messages = await store.read(
            participant.room_id, participant.participant_id, self.sent, self.acked
        )
        self._trimmed = max(self._trimmed, self.acked)
        if not messages:
            # Woken with nothing to read: the viewer may have been removed, or the room
            # lost (a Redis that came back empty).
            try:
                await ensure_present(store, participant)
            except PeerscreenError as exc:
                if exc.code is ErrorCode.ROOM_NOT_FOUND:
                    raise _room_lost() from None
                raise _Closing(CLOSE_GONE, exc.message, finished=True) from None
        self._send_all([stored_from_message(message) for message in messages])

    def _send_all(self, messages: list[Stored]) -> None:
        for message in messages:
            if message.seq <= self.sent:
                continue  # a concurrent delivery already sent it
            self.ws.send_text(message.text)
            self.sent = message.seq
            if message.type == Event.ROOM_ENDED:
                left = b'"reason":"host-left"' in message.text
                reason = ended_message("host-left" if left else "host-ended")
                raise _Closing(CLOSE_ENDED, reason, finished=True)

    # --- receiving ----------------------------------------------------------------------

    async def _process(self, text: str) -> None:
        """Handle a client message, then those that came meanwhile, in order."""
        try:
            while self.close_code is None:
                try:
                    await self._handle(text)
                except _Closing as closing:
                    self.finished = self.finished or closing.finished
                    self.close(closing.code, closing.reason)
                    return
                inbox = self._inbox
                if not inbox:
                    return
                text = inbox.popleft()
        except Exception:
            logger.exception("socket %s: handling a message failed", self.key)
            self.close(CLOSE_INTERNAL, "Internal error")
        finally:
            self._busy = False
            self.ws.resume_reading()

    async def _handle(self, text: str) -> None:
        try:
            if len(text) > MAX_BODY_BYTES:
                raise PeerscreenError(ErrorCode.PAYLOAD_TOO_LARGE, "Message too large.")
            message = client_message_adapter.validate_json(text)
            await self._dispatch(message)
        except ValidationError as exc:
            errors = exc.errors()
            if any("recursion limit" in str(e.get("msg")) for e in errors):
                # No signaling message nests more than a few levels: this is an attack
                # on the parser, not a mistake to explain.
                raise _Closing(CLOSE_BAD_MESSAGE, "Message nested too deeply.") from None
            self._send_error(text, from_validation(errors, "Message"))
        except PeerscreenError as exc:
            self._send_error(text, exc)
            if exc.code is ErrorCode.ROOM_NOT_FOUND:
                raise _room_lost() from None

    async def _dispatch(self, message: ClientMessage) -> None:
        kind = message["type"]
        if kind != "ack":
            # Acks do not count: a client that only acks (a viewer receiving a trickle)
            # acks with each pong, and without pings its acks would wait for the 20th
            # message, holding the mailbox's budget meanwhile; every viewer of a busy
            # server would then ack on the same count at once.
            self.last_active = self.last_heard
        if kind in SIGNALS and cast(WsSignal, message).get("to") == SFU_ID:
            signal = cast(WsSignal, message)
            await self.service.broadcasts.signal(
                self.participant,
                Signal(kind),
                signal.get("desc"),
                signal.get("candidate"),
            )
            if signal.get("id") is not None:
                self.send({"type": "accepted", "id": signal["id"]})
        elif kind == "subscribe":
            await self.service.broadcasts.subscribe(self.participant)
            self._accepted(message)
        elif kind == "switched":
            await self.service.broadcasts.switched(self.participant)
            self._accepted(message)
        elif kind in SIGNALS:
            signal = cast(WsSignal, message)
            await self.service.mail.send_addressed(
                self.participant,
                kind,
                signal.get("to"),
                signal.get("desc"),
                signal.get("candidate"),
                mark_seen=False,  # the heartbeat marks a socket's participant present
            )
            if signal.get("id") is not None:
                self.send({"type": "accepted", "id": signal["id"]})
        elif kind == "ack":
            # Only what was sent can be confirmed; a larger number would drop unsent mail.
            self.acked = max(self.acked, min(cast(AckMessage, message)["seq"], self.sent))
            if self.acked > self._trimmed:
                # Free the mailbox's budget now: with mail handed over whole, no read
                # may come to drop it.
                self._trimmed = self.acked
                participant = self.participant
                with contextlib.suppress(StoreUnavailable):  # the next read drops them
                    await self.service.store.acknowledge(
                        participant.room_id, participant.participant_id, self.acked
                    )
        elif kind == "chat":
            chat = cast(WsChat, message)
            await self.service.chat.post(self.participant, chat["text"], chat.get("name"))
            if chat.get("id") is not None:
                self.send({"type": "accepted", "id": chat["id"]})
        elif kind == "ping":
            self.send({"type": "pong", "id": cast(PingMessage, message).get("id")})
        elif kind == "leave":
            if self.participant.is_host:
                await self.service.end_room(self.participant.room_id, "host-ended")
            else:
                await self.service.remove_viewer(
                    self.participant, self.participant.participant_id, "left"
                )
            raise _Closing(CLOSE_NORMAL, "Left the room", finished=True)
        elif kind == "hello":
            raise PeerscreenError(ErrorCode.INVALID_REQUEST, "Already authenticated.")

    def _accepted(self, message: ClientMessage) -> None:
        message_id = cast(dict[str, Any], message).get("id")
        if message_id is not None:
            self.send({"type": "accepted", "id": message_id})

    def _send_error(self, text: str, error: PeerscreenError) -> None:
        self.send(
            {
                "type": "error",
                "id": _message_id(text),
                "code": error.code.value,
                "message": error.message,
            }
        )


SUBPROTOCOL = b"peerscreen"


def _offered(subprotocols: bytes) -> list[bytes]:
    return [part.strip() for part in subprotocols.split(b",") if part.strip()]


def _hello_in(offered: list[bytes]) -> str | None:
    """The hello a client offered as subprotocols (``auth.<token>``, ``resume.<seq>``),
    as the message it stands for; None when it offered none."""
    fields: dict[str, Any] = {"type": "hello"}
    for part in offered:
        name, _, value = part.decode("latin-1").partition(".")
        if name == "auth" and value:
            fields["token"] = value
        elif name == "resume" and value:
            fields["resume"] = int(value) if value.isdigit() else value
    if "token" not in fields:
        return None
    return to_json(fields).decode()


def _message_id(text: str) -> Any:
    """The client's ``id`` of a message that failed, so it can match the error to it."""
    if len(text) > MAX_BODY_BYTES:
        return None
    try:
        # pydantic-core's parser, unlike json's, refuses deep nesting with a ValueError
        # rather than a RecursionError.
        data = from_json(text)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("id"), str | int):
        return data["id"]
    return None


class _Opening:
    """The handler of a socket until its hello is checked; then a :class:`Connection`."""

    __slots__ = ("_given", "_hello", "_task", "client_ip", "early", "room_text", "sockets", "ws")

    def __init__(
        self,
        sockets: Sockets,
        ws: WebSocketProtocol,
        room_text: str,
        client_ip: str,
        hello: str | None = None,
    ) -> None:
        self.sockets = sockets
        self.ws = ws
        self.room_text = room_text
        self.client_ip = client_ip
        self._given = hello  # a hello that came with the handshake
        self.early: list[str] = []  # messages that came before the connection was made
        self._hello: asyncio.Future[str] | None = None
        self._task: asyncio.Task[None] | None = None

    def opened(self) -> None:
        loop = asyncio.get_running_loop()
        self._hello = loop.create_future()
        if self._given is not None:
            self._hello.set_result(self._given)
        self._task = loop.create_task(self.sockets._start(self))

    def received(self, text: str) -> None:
        if self._hello is not None and not self._hello.done():
            self._hello.set_result(text)
            self.ws.pause_reading()  # whatever follows waits until the socket is authenticated
            return
        # Sent right after a handshake that carried the hello: kept for the connection.
        self.early.append(text)
        self.ws.pause_reading()

    def writable(self) -> None:
        pass

    def closed(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def hello(self) -> str:
        assert self._hello is not None
        return await self._hello

    def refuse(self, code: int, reason: str) -> None:
        self.ws.close(code, reason)


class Sockets:
    """The WebSocket endpoint, this process's open connections, and their heartbeat."""

    def __init__(self, service: Signaling, rate_limits: RateLimits) -> None:
        self.service = service
        self.rate_limits = rate_limits
        self._open: dict[tuple[str, str], Connection] = {}
        # The heartbeat visits one slot per tick; each socket is put in the next slot
        # round, so slots stay even and a new socket is pinged within one interval.
        slices = max(1, round(service.settings.heartbeat_interval / HEARTBEAT_SLICE))
        self._slots: list[dict[Connection, None]] = [{} for _ in range(slices)]
        self._next_slot = 0
        # Each interval is cut in short slices and each slice pings its share of the
        # sockets. Pings in bursts hold the loop (their writes, then the pongs coming
        # back together) long enough to delay the messages in flight. Probes at 1,000
        # msg/s over 2,000 sockets: 50 ms slices gave p99 1.05-1.15 ms, 25 ms 0.6-0.8 ms
        # and 10 ms 0.4-0.65 ms (PeerJS: 0.4-0.8 ms); as ticks of their own, 10 ms slices
        # doubled the CPU of an idle socket. So a tick rides on a message when there is
        # one (peerscreen.api.heartbeat), up to a fifth of a slice early.
        tick = service.settings.heartbeat_interval / slices
        self.heartbeat = Heartbeat(tick, self._tick, early=tick / 5)
        self._present: list[Participant] = []
        self._marking: asyncio.Task[None] | None = None
        self._leaving: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._open)

    async def start(self) -> None:
        self.heartbeat.start()

    async def stop(self) -> None:
        self.heartbeat.stop()
        await stop_task(self._marking)
        for connection in list(self._open.values()):
            connection.close(CLOSE_GOING_AWAY, "Server shutting down")
        if self._leaving:
            await asyncio.wait(self._leaving, timeout=5)

    def _tick(self, turn: int) -> None:
        slots = self._slots
        slot = slots[turn % len(slots)]
        if slot:
            self._present += self.ping(list(slot))
        # Presence is written for several slices at once: on Redis a write is a round
        # trip. One write at a time; a slow store makes the next one larger.
        if (
            self._present
            and (turn % PRESENCE_EVERY == 0 or len(slots) < PRESENCE_EVERY)
            and (self._marking is None or self._marking.done())
        ):
            marked, self._present = self._present, []
            self._marking = asyncio.get_running_loop().create_task(self._mark(marked))

    async def _mark(self, present: list[Participant]) -> None:
        try:
            await self.service.seen_all(present)
        except StoreUnavailable:
            pass  # marked again next interval
        except Exception:
            logger.exception("heartbeat failed")

    def ping(self, sockets: list[Connection]) -> list[Participant]:
        """Ping these sockets and drop the silent ones; the participants present."""
        now = time.monotonic()
        timeout = self.service.settings.heartbeat_timeout
        interval = self.service.settings.heartbeat_interval
        present: list[Participant] = []
        for connection in sockets:
            if now - connection.last_active < interval:
                # It sent a message within the interval: alive, and its traffic keeps
                # proxies and NATs open. Half the pings (and pongs) of a busy server.
                present.append(connection.participant)
                continue
            ws = connection.ws
            if ws.writing_paused:
                # Its client is not reading: a ping would only wait in the buffer. The
                # protocol drops it if it stays so (peerscreen.websocket).
                continue
            if now - connection.last_heard > timeout:
                connection.close(CLOSE_HEARTBEAT, "No reply to heartbeats")
                continue
            ws.send_text(PING)
            present.append(connection.participant)
        return present

    def accept(
        self, ws: WebSocketProtocol, path: str, client_ip: str, subprotocols: bytes | None = None
    ) -> _Opening:
        """The handler for a new socket at ``path``; PeerscreenError refuses it.

        ``subprotocols`` is the Sec-WebSocket-Protocol the client offered: with
        ``peerscreen`` and ``auth.<token>`` (and ``resume.<seq>``) among them, the
        handshake carries the hello and the welcome follows it without a round trip.
        """
        match = PATH.match(path)
        if match is None:
            raise PeerscreenError(ErrorCode.NOT_FOUND, "No WebSocket endpoint here.")
        offered = _offered(subprotocols) if subprotocols else []
        if SUBPROTOCOL in offered:
            ws.subprotocol = SUBPROTOCOL
        # The handshake is accepted whatever the hello will say: a refused handshake
        # reaches browsers as a bare 1006 with no reason, a close code says why.
        return _Opening(self, ws, match.group(1), client_ip, _hello_in(offered))

    async def _start(self, opening: _Opening) -> None:
        ws = opening.ws
        try:
            await self.rate_limits.hit(Limit.API, opening.client_ip)
        except PeerscreenError as exc:
            code = CLOSE_TRY_AGAIN_LATER if isinstance(exc, StoreUnavailable) else exc.close_code
            opening.refuse(code, exc.message)
            return
        opened = await self._authenticate(opening)
        if opened is None or ws.state is not State.OPEN:
            return
        participant, resume, welcome = opened
        connection = Connection(ws, self, participant, resume)
        ws.handler = connection
        old = self._open.get(connection.key)
        self._open[connection.key] = connection
        connection.heartbeat_slot = self._next_slot
        self._slots[self._next_slot][connection] = None
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        if old is not None:
            old.close(CLOSE_REPLACED, "Replaced by a newer connection")
        logger.info("room %s: %s socket open", participant.room_id, participant.participant_id)
        self.service.store.notifier.subscribe(
            participant.room_id, participant.participant_id, connection
        )
        connection.send(welcome)
        connection.wake()  # whatever waited while the socket was down
        for text in opening.early:
            connection.received(text)
        ws.resume_reading()
        if connection.close_code is not None:
            return  # gone already (its closing saw it away)
        with contextlib.suppress(StoreUnavailable):
            # Present from now on; marked after the welcome, which need not wait for it.
            await self.service.seen(participant, force=True)
            # Resuming means it had a socket before: back after going away (a replaced
            # socket's participant never went away).
            if old is None and resume > 0:
                await self.service.came_back(participant)

    async def _last_seq(self, room_id: str, participant_id: str) -> int:
        if participant_id != HOST_ID and not is_viewer_id(participant_id):
            return 0  # no such participant: the token check refuses it
        return await self.service.store.last_seq(room_id, participant_id)

    def _closed(self, connection: Connection) -> None:
        participant = connection.participant
        self.service.store.notifier.unsubscribe(
            participant.room_id, participant.participant_id, connection
        )
        if self._open.get(connection.key) is connection:
            del self._open[connection.key]
        self._slots[connection.heartbeat_slot].pop(connection, None)
        replaced = connection.key in self._open
        logger.info("room %s: %s socket closed", participant.room_id, participant.participant_id)
        if connection.finished and not replaced:
            # Left, removed or ended: its media server stream (if any) stops now.
            task = asyncio.get_running_loop().create_task(self.service.broadcasts.left(participant))
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)
        if not connection.finished and not replaced:
            task = asyncio.get_running_loop().create_task(self._went_away(participant))
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)

    async def _went_away(self, participant: Participant) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self.service.went_away(participant)

    async def _authenticate(
        self, opening: _Opening
    ) -> tuple[Participant, int, dict[str, Any]] | None:
        """Read and check the hello message: who is connecting, and where it resumes."""
        service = self.service
        try:
            room_id = parse_room_id(opening.room_text)
            async with asyncio.timeout(service.settings.hello_timeout):
                text = await opening.hello()
            try:
                hello = hello_adapter.validate_json(text)
            except ValidationError as exc:
                raise PeerscreenError(
                    ErrorCode.INVALID_REQUEST,
                    'The first message must be {"type": "hello", "token": ...}: '
                    + from_validation(exc.errors(), "Message").message,
                ) from exc
            token = hello["token"]
            # Who the token claims to be is enough to read where its mailbox stands, at
            # the same time as the token is checked: one round trip to a shared store.
            claimed = token.partition(".")[0]
            participant, last_seq = await both(
                service.store.waits,
                service.authenticate(room_id, token, allow_ended=True),
                self._last_seq(room_id, claimed),
            )
            resume = hello.get("resume", 0)
            if resume > last_seq:
                raise PeerscreenError(
                    ErrorCode.INVALID_REQUEST,
                    f"Cannot resume after {resume}: the newest message is {last_seq}.",
                )
        except TimeoutError:
            opening.refuse(CLOSE_HEARTBEAT, "No hello message in time")
            return None
        except StoreUnavailable as exc:
            opening.refuse(CLOSE_TRY_AGAIN_LATER, exc.message)
            return None
        except PeerscreenError as exc:
            opening.refuse(exc.close_code, exc.message)
            return None
        welcome = {
            "type": "welcome",
            "roomId": room_id,
            "participantId": participant.participant_id,
            "role": participant.role.value,
            "lastSeq": last_seq,
            "heartbeat": service.settings.heartbeat_interval,
        }
        return participant, resume, welcome
