"""The HTTP server underneath: uvicorn's protocols with the bounds a public server needs.

uvicorn parses request heads without a size limit, a count limit or a deadline, and lets
one address open as many connections as it likes: a client could hold memory with a head
that never ends, or every file descriptor with connections that never finish a request.
A subclass of uvicorn's httptools protocol adds, and the WebSocket protocol that takes
over at an upgrade (peerscreen's own, :mod:`peerscreen.websocket`) shares:

- a deadline for each request head (``header_timeout``): 408, then the connection closes;
- limits on the head: 16 KB a header line, 64 KB in all, 100 header lines: 431;
- at most ``max_connections_per_client`` open connections per client address, HTTP and
  WebSocket together (connections from trusted proxies are not counted here: the
  application counts their clients instead): 429, then the connection closes;
- a WebSocket client that reads nothing for ``heartbeat_timeout`` while the server has
  data for it is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Settings
from .errors import ErrorCode, PeerscreenError
from .gate import ConnectionGate
from .protocol import MAX_BODY_BYTES
from .ratelimit import Network
from .websocket import Handler, UpgradeRequest, WebSocketProtocol

if TYPE_CHECKING:
    from .app import PeerscreenApp

logger = logging.getLogger("peerscreen.http")

MAX_HEADER_LINE = 16 * 1024
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
LINGER = 1.0
"""Seconds a refused connection stays open to drain what the client was still sending."""


class _HeadRefused(Exception):
    pass


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with admission, a head deadline and head limits."""

    gate: ClassVar[ConnectionGate]
    header_timeout: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._header_lines = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: bytes | None = None
        self._done = False
        self._heads_completed = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        if not self.gate.admit(id(transport), address):
            self._refuse(self.gate.refusal(), b"retry-after: 5\r\n")
            return
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.release(id(self.transport))
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self._done:
            message = f"The request head did not arrive within {self.header_timeout:g} seconds."
            self._refuse(PeerscreenError(ErrorCode.REQUEST_TIMEOUT, message))

    def _refuse(self, error: PeerscreenError, extra: bytes = b"") -> None:
        self._done = True
        self._stop_head_timer()
        self._answer_and_close(error.http_response(extra))

    def _answer_and_close(self, response: bytes) -> None:
        """Send the refusal, then read and drop what the client still sends for a moment
        before closing: closing with unread data resets the connection, and the client
        would lose the answer that says what went wrong."""
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(response)
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER, transport.close)
        else:
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        if not self._in_head:
            super().data_received(data)
            return
        self._start_head_timer()
        room = MAX_HEAD_BYTES + 4 - self._head_bytes  # 4: the blank line ending the head
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # The chunk may hold the end of the head and then a body or the next request:
        # only the bytes up to the head's end count, so parse what the limit allows and
        # look whether the head ended inside it.
        heads = self._heads_completed
        self._head_bytes += room
        super().data_received(data[:room])
        if self._done or self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # refused, closed, or upgraded to a WebSocket (which drops early frames)
        if self._heads_completed == heads:
            self._refuse(_head_too_large(f"more than {MAX_HEAD_BYTES // 1024} KB"))
            return
        self.data_received(data[room:])

    def send_400_response(self, msg: str) -> None:
        # A limit that a parser callback enforced surfaces as a parser error.
        if self._refusal is not None:
            self._done = True
            self._answer_and_close(self._refusal)
            return
        super().send_400_response(msg)

    def on_message_begin(self) -> None:
        self._in_head = True
        self._header_lines = 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > MAX_HEADERS:
            self._refusal = _head_too_large(f"more than {MAX_HEADERS} lines").http_response()
            raise _HeadRefused
        if len(name) + len(value) > MAX_HEADER_LINE:
            line = f"a line over {MAX_HEADER_LINE // 1024} KB"
            self._refusal = _head_too_large(line).http_response()
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_completed += 1
        self._head_bytes = 0
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next request's head is counted from its first byte (see data_received).
        self._in_head = True


def _head_too_large(what: str) -> PeerscreenError:
    return PeerscreenError(ErrorCode.HEADERS_TOO_LARGE, f"Request headers too large: {what}.")


class GuardedWebSocketProtocol(WebSocketProtocol):
    """peerscreen's WebSocket protocol, releasing the connection's place at the gates."""

    gate: ClassVar[ConnectionGate]
    app: ClassVar[PeerscreenApp]

    def accept(self, request: UpgradeRequest) -> Handler:
        return self.app.accept_socket(self, request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.gate.release(id(self.transport))
        self.app.socket_closed(self)
        super().connection_lost(exc)


def protocols(
    settings: Settings, proxies: list[Network], app: PeerscreenApp
) -> tuple[type[GuardedHttpProtocol], type[GuardedWebSocketProtocol]]:
    """The HTTP and WebSocket protocol classes for uvicorn, sharing one gate; the
    WebSocket protocol hands each socket to ``app``."""
    gate = ConnectionGate(settings.max_connections_per_client, proxies)
    http = type(
        "PeerscreenHttpProtocol",
        (GuardedHttpProtocol,),
        {"gate": gate, "header_timeout": settings.header_timeout},
    )
    ws = type(
        "PeerscreenWebSocketProtocol",
        (GuardedWebSocketProtocol,),
        {
            "gate": gate,
            "app": app,
            # One message at most: a client cannot make the server buffer more per socket.
            "max_message": MAX_BODY_BYTES,
            "write_stall_timeout": settings.heartbeat_timeout,
        },
    )
    return http, ws


def raise_file_limit() -> int:
    """Raise the soft limit on open files to the hard one; the new soft limit.

    Each connection is a file descriptor: the default soft limit (often 1,024) would let
    a few hundred held connections starve the server of descriptors for everything else.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %d: %s", soft, exc)
            return soft
    return target


class DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the application before it stops: long-polls then return
    at once instead of holding the exit for up to their full ``wait``."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_stop = on_stop

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.on_stop()
        await super().shutdown(sockets)
