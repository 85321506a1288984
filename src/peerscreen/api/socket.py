"""The participant WebSocket: push delivery of its mailbox, and a way to send signals.

This endpoint speaks ASGI directly rather than through the web framework: a signaling
server holds thousands of mostly idle sockets, and each framework layer costs kilobytes
per socket and microseconds per message. An idle connection here is one object and the
server's own reader task; mail is delivered by a short task started when mail arrives,
and one ticker per process pings every socket and drops the silent ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json, to_json
from starlette.types import Receive, Scope, Send

from ..errors import ErrorCode, PeerscreenError, StoreUnavailable, from_validation
from ..protocol import (
    MAX_BODY_BYTES,
    AckMessage,
    HelloMessage,
    LeaveMessage,
    PingMessage,
    WsChat,
    WsSignal,
    client_message_adapter,
    hello_adapter,
)
from ..ratelimit import Limit, Network, RateLimits, client_ip_of
from ..rooms import Event, Participant
from ..signaling import Signaling, parse_room_id
from ..signaling.access import ensure_present
from ..store import Message
from ..tasks import stop_task

logger = logging.getLogger("peerscreen.socket")

PATH = re.compile(r"^/api/rooms/([^/]{1,64})/ws$")

HEARTBEAT_SLICE = 0.05
PING = {"type": "ping"}

CLOSE_NORMAL = 1000
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


def _seq(message: Message) -> int:
    seq: int = message["seq"]
    return seq


def _close_reason(text: str) -> str:
    """Close reasons are limited to 123 bytes of UTF-8."""
    encoded = text.encode()
    if len(encoded) <= 123:
        return text
    return encoded[:120].decode(errors="ignore") + "..."


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
    """One authenticated socket of one participant."""

    __slots__ = (
        "_arrived",
        "_delivering",
        "_dirty",
        "_must_read",
        "_send",
        "_trimmed",
        "acked",
        "close_code",
        "finished",
        "key",
        "last_heard",
        "participant",
        "sending",
        "sent",
        "service",
    )

    def __init__(
        self, send: Send, service: Signaling, participant: Participant, resume: int
    ) -> None:
        self._send = send
        self.service = service
        self.participant = participant
        self.key = (participant.room_id, participant.participant_id)
        self.sent = resume  # newest sequence number sent on this socket
        self.acked = resume  # newest the client confirmed
        self.last_heard = time.monotonic()
        self.close_code: int | None = None
        self.finished = False
        self.sending = False  # a send waits on the client: it is not reading
        self._delivering = False
        self._dirty = False
        # Messages handed over with their wake-up, not sent yet: sent as they are when
        # they follow what was sent, with no read from the store.
        self._arrived: list[Message] | None = None
        self._must_read = True  # something changed that only a read shows
        self._trimmed = resume  # the store dropped what is numbered up to this

    # --- sending ------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        if self.close_code is None:
            self.sending = True
            try:
                await self._send({"type": "websocket.send", "text": to_json(message).decode()})
            finally:
                self.sending = False

    async def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            with contextlib.suppress(Exception):
                await self._send(
                    {"type": "websocket.close", "code": code, "reason": _close_reason(reason)}
                )

    def wake(self, message: Message | None = None) -> None:
        """Mail arrived: deliver it, starting a task only if none runs."""
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
            await self.close(closing.code, closing.reason)
        except StoreUnavailable:
            self._delivering = False  # retried at the next wake-up or heartbeat
        except OSError:
            self._delivering = False  # the client went away; the reader sees it too
        except Exception:
            self._delivering = False
            logger.exception("socket %s: delivery failed", self.key)
            await self.close(CLOSE_INTERNAL, "Internal error")

    def _take_arrived(self) -> list[Message] | None:
        """The arrived messages, if they follow what was sent without a gap."""
        arrived, self._arrived = self._arrived, None
        if arrived is None or self._must_read:
            return None
        arrived.sort(key=_seq)
        expected = self.sent + 1
        ready: list[Message] = []
        for message in arrived:
            seq = message["seq"]
            if seq < expected:
                continue  # sent already
            if seq > expected:
                return None  # one is missing (or still on its way): read them all
            ready.append(message)
            expected += 1
        return ready

    async def _deliver_mail(self) -> None:
        participant = self.participant
        store = self.service.store
        ready = self._take_arrived()
        if ready is not None:
            await self._send_all(ready)
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
        await self._send_all(messages)

    async def _send_all(self, messages: list[Message]) -> None:
        for message in messages:
            if message["seq"] <= self.sent:
                continue  # a concurrent delivery already sent it
            await self.send(message)
            self.sent = message["seq"]
            if message["type"] == Event.ROOM_ENDED:
                raise _Closing(CLOSE_ENDED, "The host ended this room.", finished=True)

    # --- receiving ----------------------------------------------------------------------

    async def run(self, receive: Receive) -> None:
        """Read the client's messages until the socket closes."""
        while self.close_code is None:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                text = raw.decode("utf-8", errors="replace")
            self.last_heard = time.monotonic()
            try:
                await self._handle(text)
            except _Closing as closing:
                self.finished = self.finished or closing.finished
                await self.close(closing.code, closing.reason)
                return

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
            await self._send_error(text, from_validation(errors, "Message"))
        except PeerscreenError as exc:
            await self._send_error(text, exc)
            if exc.code is ErrorCode.ROOM_NOT_FOUND:
                raise _room_lost() from None

    async def _dispatch(self, message: Any) -> None:
        if isinstance(message, WsSignal):
            await self.service.mail.send_addressed(
                self.participant, message.type, message.to, message.desc, message.candidate
            )
            if message.id is not None:
                await self.send({"type": "accepted", "id": message.id})
        elif isinstance(message, WsChat):
            await self.service.chat.post(self.participant, message.text, message.name)
            if message.id is not None:
                await self.send({"type": "accepted", "id": message.id})
        elif isinstance(message, AckMessage):
            # Only what was sent can be confirmed; a larger number would drop unsent mail.
            self.acked = max(self.acked, min(message.seq, self.sent))
            if self.acked > self._trimmed:
                # Free the mailbox's budget now: with mail handed over whole, no read
                # may come to drop it.
                self._trimmed = self.acked
                participant = self.participant
                with contextlib.suppress(StoreUnavailable):  # the next read drops them
                    await self.service.store.acknowledge(
                        participant.room_id, participant.participant_id, self.acked
                    )
        elif isinstance(message, PingMessage):
            if message.type == "ping":
                await self.send({"type": "pong", "id": message.id})
        elif isinstance(message, LeaveMessage):
            if self.participant.is_host:
                await self.service.end_room(self.participant.room_id, "host-ended")
            else:
                await self.service.remove_viewer(
                    self.participant, self.participant.participant_id, "left"
                )
            raise _Closing(CLOSE_NORMAL, "Left the room", finished=True)
        elif isinstance(message, HelloMessage):
            raise PeerscreenError(ErrorCode.INVALID_REQUEST, "Already authenticated.")

    async def _send_error(self, text: str, error: PeerscreenError) -> None:
        await self.send(
            {
                "type": "error",
                "id": _message_id(text),
                "code": error.code.value,
                "message": error.message,
            }
        )


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


class Sockets:
    """The WebSocket endpoint, this process's open connections, and their heartbeat."""

    def __init__(self, service: Signaling, rate_limits: RateLimits, proxies: list[Network]) -> None:
        self.service = service
        self.rate_limits = rate_limits
        self.proxies = proxies
        self._open: dict[tuple[str, str], Connection] = {}
        self._ticker: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._open)

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_forever(), name="socket-heartbeat")

    async def stop(self) -> None:
        await stop_task(self._ticker)
        self._ticker = None
        for connection in list(self._open.values()):
            await connection.close(1001, "Server shutting down")

    async def _tick_forever(self) -> None:
        # Each interval is cut in short slices and each slice visits its share of the
        # sockets: pinging thousands at once holds the loop (and the clients) long enough
        # to delay the messages in flight.
        interval = self.service.settings.heartbeat_interval
        slices = max(1, round(interval / HEARTBEAT_SLICE))
        turn = 0
        while True:
            await asyncio.sleep(interval / slices)
            try:
                await self.tick(turn % slices, slices)
            except Exception:
                logger.exception("heartbeat failed")
            turn += 1

    async def tick(self, part: int = 0, parts: int = 1) -> None:
        """Ping this part of the sockets, drop the silent ones, and mark the rest present."""
        now = time.monotonic()
        timeout = self.service.settings.heartbeat_timeout
        for connection in list(self._open.values())[part::parts]:
            if connection.sending:
                # Its client is not reading: a ping would wait too, and hold up every
                # socket after it. The server drops it if it stays so (http_server.py).
                continue
            if now - connection.last_heard > timeout:
                await connection.close(CLOSE_HEARTBEAT, "No reply to heartbeats")
                continue
            with contextlib.suppress(OSError):
                await connection.send(PING)
            with contextlib.suppress(StoreUnavailable):
                await self.service.seen(connection.participant)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PATH.match(scope["path"])
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if match is None:
            await send({"type": "websocket.close", "code": 1008})  # refuses the handshake
            return
        # Accept first: a refused handshake reaches browsers as a bare 1006 with no reason.
        await send({"type": "websocket.accept"})
        try:
            await self.rate_limits.hit(Limit.API, client_ip_of(scope, self.proxies))
        except PeerscreenError as exc:
            code = CLOSE_TRY_AGAIN_LATER if isinstance(exc, StoreUnavailable) else exc.close_code
            await send(
                {"type": "websocket.close", "code": code, "reason": _close_reason(exc.message)}
            )
            return
        opened = await self._authenticate(match.group(1), receive, send)
        if opened is None:
            return
        participant, resume, welcome = opened
        connection = Connection(send, self.service, participant, resume)
        store = self.service.store
        old = self._open.get(connection.key)
        self._open[connection.key] = connection
        if old is not None:
            await old.close(CLOSE_REPLACED, "Replaced by a newer connection")
        logger.info("room %s: %s socket open", participant.room_id, participant.participant_id)
        store.notifier.subscribe(participant.room_id, participant.participant_id, connection)
        try:
            await connection.send(welcome)
            connection.wake()  # whatever waited while the socket was down
            # Resuming means it had a socket before: back after going away (a replaced
            # socket's participant never went away).
            if old is None and resume > 0:
                with contextlib.suppress(StoreUnavailable):
                    await self.service.came_back(participant)
            await connection.run(receive)
        finally:
            store.notifier.unsubscribe(participant.room_id, participant.participant_id, connection)
            if self._open.get(connection.key) is connection:
                del self._open[connection.key]
            await connection.close(CLOSE_NORMAL, "")
            replaced = self._open.get(connection.key) is not None
            if not connection.finished and not replaced:
                with contextlib.suppress(StoreUnavailable):
                    await self.service.went_away(participant)
            logger.info(
                "room %s: %s socket closed", participant.room_id, participant.participant_id
            )

    async def _authenticate(
        self, room_text: str, receive: Receive, send: Send
    ) -> tuple[Participant, int, dict[str, Any]] | None:
        """Read and check the hello message: who is connecting, and where it resumes."""
        service = self.service

        async def refuse(code: int, reason: str) -> None:
            with contextlib.suppress(Exception):
                await send(
                    {"type": "websocket.close", "code": code, "reason": _close_reason(reason)}
                )

        try:
            room_id = parse_room_id(room_text)
            async with asyncio.timeout(service.settings.hello_timeout):
                message = await receive()
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text") or (message.get("bytes") or b"").decode(errors="replace")
            try:
                hello = hello_adapter.validate_json(text)
            except ValidationError as exc:
                raise PeerscreenError(
                    ErrorCode.INVALID_REQUEST,
                    'The first message must be {"type": "hello", "token": ...}: '
                    + from_validation(exc.errors(), "Message").message,
                ) from exc
            participant = await service.authenticate(room_id, hello.token, allow_ended=True)
            last_seq = await service.store.last_seq(room_id, participant.participant_id)
            if hello.resume > last_seq:
                raise PeerscreenError(
                    ErrorCode.INVALID_REQUEST,
                    f"Cannot resume after {hello.resume}: the newest message is {last_seq}.",
                )
            await service.seen(participant, force=True)
        except TimeoutError:
            await refuse(CLOSE_HEARTBEAT, "No hello message in time")
            return None
        except StoreUnavailable as exc:
            await refuse(CLOSE_TRY_AGAIN_LATER, exc.message)
            return None
        except PeerscreenError as exc:
            await refuse(exc.close_code, exc.message)
            return None
        welcome = {
            "type": "welcome",
            "roomId": room_id,
            "participantId": participant.participant_id,
            "role": participant.role.value,
            "lastSeq": last_seq,
            "heartbeat": service.settings.heartbeat_interval,
        }
        return participant, hello.resume, welcome
