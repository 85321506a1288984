"""The participant WebSocket: push delivery of its mailbox, and a way to send signals.

Each connection runs two tasks: a reader that handles what the client sends, and a pump
that sends the mailbox as it fills, pings the client and drops it when it falls silent.
Both send through one lock, with a timeout so one stuck client cannot hold a task forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.websockets import WebSocketState

from ..errors import ErrorCode, PeerscreenError, StoreUnavailable
from ..protocol import (
    MAX_BODY_BYTES,
    AckMessage,
    HelloMessage,
    LeaveMessage,
    PingMessage,
    WsSignal,
    client_message_adapter,
    hello_adapter,
    signal_payload,
)
from ..rooms import Event, Participant, Signal, require_addressee
from ..service import Signaling, parse_room_id

logger = logging.getLogger("peerscreen.socket")

router = APIRouter()

CLOSE_NORMAL = 1000
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_BAD_MESSAGE = 4400
CLOSE_HEARTBEAT = 4408
CLOSE_REPLACED = 4409
CLOSE_ENDED = 4410


def _close_reason(text: str) -> str:
    """Close reasons are limited to 123 bytes of UTF-8."""
    encoded = text.encode()
    if len(encoded) <= 123:
        return text
    return encoded[:120].decode(errors="ignore") + "..."


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


class _Closing(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Connections:
    """This process's open sockets, one per participant: a new one replaces the old."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], Connection] = {}

    def add(self, connection: Connection) -> None:
        key = connection.key
        old = self._open.get(key)
        self._open[key] = connection
        if old is not None:
            old.replace()

    def remove(self, connection: Connection) -> None:
        if self._open.get(connection.key) is connection:
            del self._open[connection.key]

    def __len__(self) -> int:
        return len(self._open)


class Connection:
    def __init__(
        self, websocket: WebSocket, service: Signaling, participant: Participant, resume: int
    ) -> None:
        self.websocket = websocket
        self.service = service
        self.participant = participant
        self.key = (participant.room_id, participant.participant_id)
        self.sent = resume  # newest sequence number sent on this socket
        self.acked = resume  # newest the client confirmed
        self.last_heard = time.monotonic()
        self._send_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._replaced = False
        self._finished = False  # left, removed or ended: no grace period

    @property
    def settings(self) -> Any:
        return self.service.settings

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock, asyncio.timeout(self.settings.heartbeat_timeout):
            await self.websocket.send_text(_dumps(message))

    def replace(self) -> None:
        self._replaced = True
        for task in self._tasks:
            task.cancel()

    async def run(self, welcome: dict[str, Any]) -> None:
        await self.send(welcome)
        reader = asyncio.create_task(self._read_loop())
        pump = asyncio.create_task(self._pump())
        self._tasks = [reader, pump]
        code, reason = CLOSE_NORMAL, ""
        try:
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():
                    continue
                exc = task.exception()
                if isinstance(exc, _Closing):
                    code, reason = exc.code, exc.reason
                elif exc is not None and not isinstance(
                    exc, WebSocketDisconnect | TimeoutError | OSError
                ):
                    logger.error("socket %s failed", self.key, exc_info=exc)
                    code, reason = 1011, "Internal error"
            if self._replaced:
                code, reason = CLOSE_REPLACED, "Replaced by a newer connection"
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(BaseException):
                    await task
            await _close(self.websocket, code, reason)
            if not self._replaced and not self._finished:
                self.service.went_away(self.participant)

    async def _read_loop(self) -> None:
        while True:
            text = await self.websocket.receive_text()
            self.last_heard = time.monotonic()
            await self._handle(text)

    async def _handle(self, text: str) -> None:
        message_id: Any = None
        try:
            if len(text) > MAX_BODY_BYTES:
                raise PeerscreenError(ErrorCode.PAYLOAD_TOO_LARGE, "Message too large.")
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise PeerscreenError(ErrorCode.INVALID_REQUEST, "Message is not JSON.") from exc
            if isinstance(data, dict):
                message_id = data.get("id") if isinstance(data.get("id"), str | int) else None
            message = client_message_adapter.validate_python(data)
            await self._dispatch(message)
        except ValidationError as exc:
            await self._send_error(message_id, _validation_error(exc))
        except PeerscreenError as exc:
            await self._send_error(message_id, exc)

    async def _dispatch(self, message: Any) -> None:
        if isinstance(message, WsSignal):
            try:
                payload = signal_payload(message.type, message.desc, message.candidate)
            except ValueError as exc:
                raise PeerscreenError(ErrorCode.VALIDATION_ERROR, str(exc)) from exc
            require_addressee(self.participant, message.to)
            await self.service.send(self.participant, Signal(message.type), message.to, payload)
            if message.id is not None:
                await self.send({"type": "accepted", "id": message.id})
        elif isinstance(message, AckMessage):
            # Only what was sent can be confirmed; a larger number would drop unsent mail.
            self.acked = max(self.acked, min(message.seq, self.sent))
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
            self._finished = True
            raise _Closing(CLOSE_NORMAL, "Left the room")
        elif isinstance(message, HelloMessage):
            raise PeerscreenError(ErrorCode.INVALID_REQUEST, "Already authenticated.")

    async def _send_error(self, message_id: Any, error: PeerscreenError) -> None:
        await self.send(
            {"type": "error", "id": message_id, "code": error.code.value, "message": error.message}
        )

    async def _pump(self) -> None:
        participant = self.participant
        store = self.service.store
        interval = self.settings.heartbeat_interval
        next_ping = time.monotonic() + interval
        woken = False
        with store.listen(participant.room_id, participant.participant_id) as listener:
            while True:
                try:
                    messages = await store.read(
                        participant.room_id, participant.participant_id, self.sent, self.acked
                    )
                    if not messages and woken and not participant.is_host:
                        await self._check_still_member()
                except StoreUnavailable:
                    messages = []  # retried at the next wake-up or heartbeat
                for message in messages:
                    await self.send(message)
                    self.sent = message["seq"]
                    if message["type"] == Event.ROOM_ENDED:
                        self._finished = True
                        raise _Closing(CLOSE_ENDED, "The host ended this room.")
                now = time.monotonic()
                if now >= next_ping:
                    if now - self.last_heard > self.settings.heartbeat_timeout:
                        raise _Closing(CLOSE_HEARTBEAT, "No reply to heartbeats")
                    await self.send({"type": "ping"})
                    with contextlib.suppress(StoreUnavailable):
                        await self.service.seen(participant)
                    next_ping = now + interval
                woken = await listener.wait(max(0.0, next_ping - time.monotonic()))

    async def _check_still_member(self) -> None:
        viewers = await self.service.store.get_viewers(self.participant.room_id)
        if self.participant.participant_id not in viewers:
            self._finished = True
            raise _Closing(4403, "You are no longer in this room (you left or were removed).")


def _validation_error(exc: ValidationError) -> PeerscreenError:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    if first.get("type") == "string_too_long":
        return PeerscreenError(ErrorCode.PAYLOAD_TOO_LARGE, f"{where}: too long.")
    return PeerscreenError(ErrorCode.VALIDATION_ERROR, f"{where}: {first.get('msg')}")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2.0):
            await websocket.close(code, _close_reason(reason))


@router.websocket("/api/rooms/{room_id}/ws")
async def room_socket(websocket: WebSocket, room_id: str) -> None:
    """Authenticate with a hello message, then exchange messages (docs/protocol.md)."""
    service: Signaling = websocket.app.state.signaling
    connections: Connections = websocket.app.state.connections
    # Accept first: a refused handshake reaches browsers as a bare 1006 with no reason.
    await websocket.accept()
    try:
        canonical = parse_room_id(room_id)
        async with asyncio.timeout(service.settings.hello_timeout):
            text = await websocket.receive_text()
        try:
            hello = hello_adapter.validate_json(text)
        except ValidationError as exc:
            raise PeerscreenError(
                ErrorCode.INVALID_REQUEST,
                'The first message must be {"type": "hello", "token": ...}: '
                + _validation_error(exc).message,
            ) from exc
        participant = await service.authenticate(canonical, hello.token, allow_ended=True)
        last_seq = await service.store.last_seq(canonical, participant.participant_id)
        if hello.resume > last_seq:
            raise PeerscreenError(
                ErrorCode.INVALID_REQUEST,
                f"Cannot resume after {hello.resume}: the newest message is {last_seq}.",
            )
        await service.seen(participant, force=True)
    except TimeoutError:
        await _close(websocket, CLOSE_HEARTBEAT, "No hello message in time")
        return
    except WebSocketDisconnect:
        return
    except StoreUnavailable as exc:
        await _close(websocket, CLOSE_TRY_AGAIN_LATER, exc.message)
        return
    except PeerscreenError as exc:
        await _close(websocket, exc.close_code, exc.message)
        return

    connection = Connection(websocket, service, participant, hello.resume)
    connections.add(connection)
    logger.info("room %s: %s socket open", canonical, participant.participant_id)
    try:
        await connection.run(
            {
                "type": "welcome",
                "roomId": canonical,
                "participantId": participant.participant_id,
                "role": participant.role.value,
                "lastSeq": last_seq,
                "heartbeat": service.settings.heartbeat_interval,
            }
        )
    finally:
        connections.remove(connection)
        logger.info("room %s: %s socket closed", canonical, participant.participant_id)
