"""One participant's WebSocket to its room (docs/protocol.md, section 2), for clients.

What the page's ``signaling.js`` does, in asyncio: the hello rides in the handshake as
subprotocols, mailbox messages are numbered and deduplicated, acks go every 20 messages
and with each pong, and a dropped socket is opened again with ``resume`` so that nothing
posted meanwhile is lost. Messages sent with :meth:`SignalingSocket.send` are kept until
the server says ``accepted``, and sent again after a reconnect (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from .api import Credentials

log = logging.getLogger("peerscreen.client")

Message = dict[str, Any]

FINAL_CLOSE_CODES = frozenset({1000, 4400, 4401, 4403, 4404, 4409, 4410})
"""Close codes after which reconnecting cannot help (docs/protocol.md, Close codes)."""
ACK_EVERY = 20
FIRST_RETRY_S = 0.5
LONGEST_RETRY_S = 10.0
GIVE_UP_AFTER_S = 60.0
"""How long the server may stay unreachable before the client stops trying. Longer than
the server's default grace period (30 s), after which it has forgotten us anyway."""


@dataclass(frozen=True)
class CloseInfo:
    """Why the socket finished for good: a close code of the protocol and its reason."""

    code: int
    reason: str


class SignalingError(Exception):
    """The server refused a message (an ``error`` reply), or the socket finished first."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SignalingSocket:
    """A room's messages for one participant, over a socket that survives drops.

    ``on_state`` hears ``connecting``, ``open``, ``reconnecting`` and ``closed``.
    """

    def __init__(
        self,
        who: Credentials,
        resume: int = 0,
        on_state: Callable[[str], None] | None = None,
        give_up_after: float = GIVE_UP_AFTER_S,
    ) -> None:
        self.who = who
        self.last_seq = resume
        self.acked_seq = resume
        self.state = "connecting"
        self.heartbeat = 10.0
        self.welcome: Message | None = None
        self.closed: asyncio.Future[CloseInfo] = asyncio.get_running_loop().create_future()
        self._on_state = on_state
        self._give_up_after = give_up_after
        self._inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._unconfirmed: dict[str, tuple[Message, asyncio.Future[None]]] = {}
        self._next_id = 1
        self._socket: ClientConnection | None = None
        self._opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def start(self) -> None:
        """Connect; returns once the server welcomed us, or raises :class:`SignalingError`
        when it refused (a wrong token, a room that ended)."""
        self._task = asyncio.create_task(self._run(), name="peerscreen-signaling")
        opened: asyncio.Future[Any] = asyncio.ensure_future(self._opened.wait())
        closed: asyncio.Future[Any] = asyncio.ensure_future(asyncio.shield(self.closed))
        await asyncio.wait({opened, closed}, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        opened.cancel()
        if not self._opened.is_set():
            info = self.closed.result()
            raise SignalingError(f"closed_{info.code}", info.reason)

    async def messages(self) -> AsyncIterator[Message]:
        """Each mailbox message once, in order, until the socket finishes for good.
        ``error`` replies that answer no particular message come here too."""
        while True:
            message = await self._inbox.get()
            if message is None:
                return
            yield message

    async def send(self, kind: str, **fields: Any) -> None:
        """Send an offer, answer, candidate or chat; returns once the server stored it."""
        if self.closed.done():
            raise SignalingError("closed", "The connection to the room is closed.")
        message_id = f"m{self._next_id}"
        self._next_id += 1
        message = {"type": kind, "id": message_id, **fields}
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unconfirmed[message_id] = (message, done)
        if self._socket is not None and self.state == "open":
            await self._write(self._socket, message)
        await done

    async def leave(self) -> None:
        """Leave the room (a viewer) or end it (the host), then close."""
        if self._socket is not None and self.state == "open":
            with contextlib.suppress(ConnectionClosed):
                await self._socket.send('{"type":"leave"}')
        await self.close(CloseInfo(1000, "Left the room."))

    async def close(self, info: CloseInfo | None = None) -> None:
        self._finish(info or CloseInfo(1000, "Closed by the client."))
        if self._socket is not None:
            with contextlib.suppress(WebSocketException, OSError):
                await self._socket.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- the connection ----------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state != self.state:
            log.debug("signaling %s -> %s", self.state, state)
            self.state = state
            if self._on_state is not None:
                self._on_state(state)

    def _finish(self, info: CloseInfo) -> None:
        if self.closed.done():
            return
        self._set_state("closed")
        self.closed.set_result(info)
        self._inbox.put_nowait(None)
        for _, done in self._unconfirmed.values():
            if not done.done():
                done.set_exception(SignalingError("closed", info.reason))
        self._unconfirmed.clear()

    async def _run(self) -> None:
        delay = FIRST_RETRY_S
        failing_since: float | None = None
        while not self.closed.done():
            info = await self._connect_once()
            if info is None:  # it opened, then dropped: start over with short waits
                delay, failing_since = FIRST_RETRY_S, None
            elif info.code in FINAL_CLOSE_CODES:
                self._finish(info)
                return
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > self._give_up_after:
                self._finish(CloseInfo(1006, "Lost the connection to the server."))
                return
            self._set_state("reconnecting")
            await asyncio.sleep(delay)
            delay = min(delay * 2, LONGEST_RETRY_S)
            self.reconnects += 1

    async def _connect_once(self) -> CloseInfo | None:
        """One socket's life. None when it was welcomed (then dropped); else why it failed."""
        protocols = [
            Subprotocol("peerscreen"),
            Subprotocol(f"auth.{self.who.token}"),
            Subprotocol(f"resume.{self.last_seq}"),
        ]
        try:
            async with connect(
                self.who.room.websocket_url,
                subprotocols=protocols,
                compression=None,
                ping_interval=None,  # the server's heartbeat is the protocol's own ping
                max_size=1 << 20,
                open_timeout=10,
            ) as socket:
                self._socket = socket
                welcomed = await self._read(socket)
                code = socket.close_code or 1006
                return (
                    None
                    if welcomed and code not in FINAL_CLOSE_CODES
                    else CloseInfo(code, socket.close_reason or "")
                )
        except InvalidStatus as exc:
            status = exc.response.status_code
            code = 4429 if status == 429 else 4000 + status
            reason = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
            return CloseInfo(code if status in (404, 426, 400) else 1006, reason)
        except (OSError, TimeoutError, WebSocketException) as exc:
            return CloseInfo(1006, f"Could not reach the server: {exc}")
        finally:
            self._socket = None

    async def _read(self, socket: ClientConnection) -> bool:
        welcomed = False
        try:
            while True:
                # The server pings a quiet socket every `heartbeat` seconds: hearing
                # nothing for much longer means the path is gone without a FIN.
                raw = await asyncio.wait_for(socket.recv(), timeout=self.heartbeat * 3)
                message = json.loads(raw)
                if not isinstance(message, dict):
                    continue
                if message.get("type") == "welcome":
                    welcomed = True
                    await self._welcomed(socket, message)
                else:
                    await self._handle(socket, message)
        except TimeoutError:
            log.info("no word from the server for %.0f s: reconnecting", self.heartbeat * 3)
            await socket.close(4408, "No heartbeat from the server.")
        except ConnectionClosed:
            pass
        return welcomed

    async def _welcomed(self, socket: ClientConnection, message: Message) -> None:
        self.welcome = message
        self.heartbeat = float(message.get("heartbeat", self.heartbeat))
        self._set_state("open")
        self._opened.set()
        # Whatever was not confirmed before a drop goes again, in its first order.
        for pending, _ in list(self._unconfirmed.values()):
            await self._write(socket, pending)

    async def _handle(self, socket: ClientConnection, message: Message) -> None:
        kind = message.get("type")
        if kind == "ping":
            await self._write(socket, {"type": "pong"})
            await self._ack(socket)
        elif kind == "pong":
            return
        elif kind == "accepted":
            self._settle(message.get("id"), None)
        elif kind == "error" and message.get("id") is not None:
            self._settle(
                message.get("id"),
                SignalingError(str(message.get("code")), str(message.get("message"))),
            )
        else:
            seq = message.get("seq")
            if isinstance(seq, int):
                if seq <= self.last_seq:
                    return  # delivered before a reconnect
                self.last_seq = seq
            self._inbox.put_nowait(message)
            if self.last_seq - self.acked_seq >= ACK_EVERY:
                await self._ack(socket)

    async def _ack(self, socket: ClientConnection) -> None:
        if self.last_seq > self.acked_seq:
            await self._write(socket, {"type": "ack", "seq": self.last_seq})
            self.acked_seq = self.last_seq

    async def _write(self, socket: ClientConnection, message: Message) -> None:
        with contextlib.suppress(ConnectionClosed):  # the reader sees the close too
            await socket.send(json.dumps(message, separators=(",", ":")))

    def _settle(self, message_id: object, error: SignalingError | None) -> None:
        entry = self._unconfirmed.pop(str(message_id), None)
        if entry is None or entry[1].done():
            return
        if error is None:
            entry[1].set_result(None)
        else:
            entry[1].set_exception(error)
