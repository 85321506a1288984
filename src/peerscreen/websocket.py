"""A WebSocket server connection (RFC 6455) on an asyncio transport, driving a handler.

uvicorn's WebSocket protocols put an ASGI layer between the socket and the application:
a parser object, a receive queue and a waiting task per connection, and per message a
queue hand-off, a task wake-up and a few dictionaries. A signaling server holds thousands
of mostly idle sockets and relays small messages, so that layer was most of its memory
per connection and a large share of its CPU per message (benchmarks/README.md). This
protocol takes over from uvicorn's HTTP protocol at the upgrade and calls its handler
directly: ``received(text)`` for each message, ``writable()`` when the client reads
again, ``closed()`` once. Sends write to the transport at once.

What it holds a client to:

- messages of at most ``max_message`` bytes, fragmented or not (close 1009);
- frames masked, reserved bits clear, control frames short and whole (close 1002);
- text that is UTF-8 (close 1007);
- a client that reads nothing for ``write_stall_timeout`` while data waits for it is
  dropped; while its writes wait, nothing more is read from it, so what it asks for
  (pongs, replies) cannot pile up in the server;
- a close handshake that does not finish within ``CLOSE_TIMEOUT`` ends the connection.

Per-message deflate is not offered; a subprotocol only if the handler picks one.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import logging
import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

# websockets' C helper (a dependency through uvicorn[standard]): unmasking byte by
# byte in Python would cost more than the rest of a message's handling.
from websockets.speedups import apply_mask

from .errors import ErrorCode, PeerscreenError

logger = logging.getLogger("peerscreen.websocket")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_TIMEOUT = 3.0
"""Seconds a closing connection waits for the client's close frame."""

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

_LENGTH_16 = struct.Struct("!H")
_LENGTH_64 = struct.Struct("!Q")


class State(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"  # a close frame was sent; waiting for the client's
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """The upgrade request, as the handler's acceptor sees it."""

    path: str
    headers: dict[bytes, bytes]
    """Lower-case names; the last value of a repeated header."""
    peer: tuple[str, int] | None


class Handler(Protocol):
    """The application side of one WebSocket."""

    def opened(self) -> None:
        """The handshake is done: the handler may send."""

    def received(self, text: str) -> None:
        """A whole message arrived (binary messages are decoded as UTF-8, leniently)."""

    def writable(self) -> None:
        """The client reads again after its writes had to wait."""

    def closed(self) -> None:
        """The connection is gone; called once, and nothing is delivered after it."""


class Refused:
    """A handler that closes its socket as soon as it opens, with a code and reason: a
    refusal a browser can read (a refused handshake reaches it as a bare 1006)."""

    def __init__(self, ws: WebSocketProtocol, code: int, reason: str) -> None:
        self.ws = ws
        self.code = code
        self.reason = reason

    def opened(self) -> None:
        self.ws.close(self.code, self.reason)

    def received(self, text: str) -> None:
        pass

    def writable(self) -> None:
        pass

    def closed(self) -> None:
        pass


def frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final frame (the server's frames are never masked)."""
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, length))
    elif length < 1 << 16:
        head = bytes((0x80 | opcode, 126)) + _LENGTH_16.pack(length)
    else:
        head = bytes((0x80 | opcode, 127)) + _LENGTH_64.pack(length)
    return head + payload


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's body; the reason is cut to the 123 bytes a control frame leaves."""
    encoded = reason.encode()
    if len(encoded) > 123:
        encoded = encoded[:120].decode(errors="ignore").encode() + b"..."
    return _LENGTH_16.pack(code) + encoded


def accept_key(key: bytes) -> bytes:
    # SHA-1 is what RFC 6455 prescribes here; it proves nothing secret.
    return base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324


class _ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WebSocketProtocol(asyncio.Protocol):
    """One server-side WebSocket connection; see the module's documentation.

    uvicorn creates it when its HTTP protocol sees an upgrade, calls ``connection_made``
    and then ``data_received`` with the request head rebuilt, and hands the transport over.
    """

    max_message: ClassVar[int]
    write_stall_timeout: ClassVar[float]

    def __init__(self, config: Any = None, server_state: Any = None, **_: Any) -> None:
        self._server_state = server_state
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] | None = None
        self.state = State.HANDSHAKE
        self.handler: Handler | None = None
        self.subprotocol: bytes | None = None  # chosen by accept(), named in the 101
        self.writing_paused = False
        self.reading_paused = False  # by the handler
        self._buffer: bytes | bytearray = b""
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = OP_TEXT
        self._fragment_bytes = 0
        self._timer: asyncio.TimerHandle | None = None  # write stall or close handshake
        self._parsing = False

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        if self._server_state is not None:
            self._server_state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = State.CLOSED
        self._cancel_timer()
        if self._server_state is not None:
            self._server_state.connections.discard(self)
        handler, self.handler = self.handler, None
        if handler is not None:
            try:
                handler.closed()
            except Exception:
                logger.exception("WebSocket handler failed on close")

    def data_received(self, data: bytes) -> None:
        if self.state is State.HANDSHAKE:
            self._handshake(data)
            return
        if self._buffer:
            # Left over from earlier: a bytearray, so a frame that arrives in many pieces
            # is extended in place rather than copied whole at each piece.
            self._buffer += data
        else:
            self._buffer = data
        self._parse()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.transport is not None and self.state is State.OPEN:
            self.transport.pause_reading()
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self.write_stall_timeout, self._stalled
            )

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.state is State.OPEN:
            self._cancel_timer()
            if not self.reading_paused and self.transport is not None:
                self.transport.resume_reading()
                self._parse()
            if self.handler is not None:
                self.handler.writable()

    def accept(self, request: UpgradeRequest) -> Handler:
        """The handler for this upgrade; raise PeerscreenError to refuse the handshake
        with an HTTP response. It may set :attr:`subprotocol` to one the client offered.
        Servers override this."""
        raise PeerscreenError(ErrorCode.NOT_FOUND, "No WebSocket endpoint here.")

    # --- what the handler calls ---------------------------------------------------------

    def send_text(self, payload: bytes) -> None:
        """Send a text message (``payload`` is UTF-8); dropped if the socket is closing."""
        if self.state is State.OPEN:
            assert self.transport is not None
            self.transport.write(frame(OP_TEXT, payload))

    def close(self, code: int, reason: str = "") -> None:
        """Start the close handshake; the handler's ``closed`` follows when it ends."""
        if self.state is not State.OPEN:
            if self.state is State.HANDSHAKE and self.transport is not None:
                self.transport.close()
            return
        self.state = State.CLOSING
        assert self.transport is not None
        self.transport.write(frame(OP_CLOSE, close_payload(code, reason)))
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.transport.abort)
        # The client's close frame must still be read, whatever the flow control said,
        # and it may be buffered already.
        self.transport.resume_reading()
        if self._buffer:
            asyncio.get_running_loop().call_soon(self._parse)

    def pause_reading(self) -> None:
        """Deliver no more messages until :meth:`resume_reading` (the handler is busy)."""
        if not self.reading_paused:
            self.reading_paused = True
            if self.transport is not None and self.state is State.OPEN:
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            if self.transport is not None and self.state is State.OPEN:
                if not self.writing_paused:
                    self.transport.resume_reading()
                self._parse()

    def shutdown(self) -> None:
        """The server is stopping (uvicorn calls this on every connection)."""
        if self.state is State.HANDSHAKE:
            if self.transport is not None:
                self.transport.close()
            return
        self.close(1001, "Server shutting down")

    # --- the opening handshake ----------------------------------------------------------

    def _handshake(self, data: bytes) -> None:
        assert self.transport is not None
        # uvicorn hands over the request head whole (it parsed it first), names in lower case.
        head, _, _ = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        target = parts[1] if len(parts) == 3 else b"/"
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get(b"sec-websocket-key", b"")
        try:
            if headers.get(b"sec-websocket-version") != b"13":
                raise _HandshakeRefused(
                    PeerscreenError(
                        ErrorCode.UPGRADE_REQUIRED, "Only WebSocket version 13 is supported."
                    ),
                    b"sec-websocket-version: 13\r\n",
                )
            if len(_decode_key(key)) != 16:
                raise _HandshakeRefused(
                    PeerscreenError(ErrorCode.INVALID_REQUEST, "Invalid Sec-WebSocket-Key.")
                )
            path = target.split(b"?", 1)[0].decode("latin-1")
            request = UpgradeRequest(path=path, headers=headers, peer=self.peer)
            try:
                handler = self.accept(request)
            except PeerscreenError as exc:
                raise _HandshakeRefused(exc) from None
        except _HandshakeRefused as refused:
            self.state = State.CLOSED
            self.transport.write(refused.error.http_response(refused.extra_headers))
            self.transport.close()
            return
        response = [
            b"HTTP/1.1 101 Switching Protocols\r\n",
            b"upgrade: websocket\r\n",
            b"connection: Upgrade\r\n",
            b"sec-websocket-accept: " + accept_key(key) + b"\r\n",
        ]
        if self.subprotocol is not None:
            response.append(b"sec-websocket-protocol: " + self.subprotocol + b"\r\n")
        if self._server_state is not None:  # uvicorn's date and server headers
            for name, value in self._server_state.default_headers:
                response.append(name + b": " + value + b"\r\n")
        response.append(b"\r\n")
        self.transport.write(b"".join(response))
        self.state = State.OPEN
        self.handler = handler
        handler.opened()

    # --- frames -------------------------------------------------------------------------

    def _parse(self) -> None:
        """Deliver every whole message buffered, until the handler pauses reading."""
        if self._parsing:
            return  # called back from a handler: the running pass goes on from here
        self._parsing = True
        try:
            self._parse_buffer()
        finally:
            self._parsing = False

    def _parse_buffer(self) -> None:
        data = self._buffer
        offset = 0
        size = len(data)
        try:
            while size - offset >= 2 and self.state is not State.CLOSED:
                if self.reading_paused and self.state is State.OPEN:
                    break
                first, second = data[offset], data[offset + 1]
                opcode = first & 0x0F
                if first & 0x70:
                    raise _ProtocolError(CLOSE_PROTOCOL_ERROR, "Reserved bits set.")
                if not second & 0x80:
                    raise _ProtocolError(CLOSE_PROTOCOL_ERROR, "Client frames must be masked.")
                length = second & 0x7F
                header = 2
                if length == 126:
                    if size - offset < 4:
                        break
                    length = _LENGTH_16.unpack_from(data, offset + 2)[0]
                    header = 4
                elif length == 127:
                    if size - offset < 10:
                        break
                    length = _LENGTH_64.unpack_from(data, offset + 2)[0]
                    header = 10
                fin = first & 0x80
                if opcode >= OP_CLOSE:
                    if length > 125 or not fin:
                        raise _ProtocolError(CLOSE_PROTOCOL_ERROR, "Invalid control frame.")
                elif self._fragment_bytes + length > self.max_message:
                    # Refused at the header: an oversized message is never buffered.
                    raise _ProtocolError(CLOSE_TOO_BIG, "Message too big.")
                end = offset + header + 4 + length
                if end > size:
                    break
                mask = data[offset + header : offset + header + 4]
                payload = apply_mask(data[offset + header + 4 : end], mask)
                offset = end
                self._frame(opcode, bool(fin), payload)
        except _ProtocolError as error:
            self._buffer = b""
            self._fail(error.code, error.reason)
            return
        if offset == size:
            self._buffer = b""
        elif offset or not isinstance(data, bytearray):
            self._buffer = bytearray(data[offset:])  # the start of a frame: appended to

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                raise _ProtocolError(CLOSE_PROTOCOL_ERROR, "Expected a continuation frame.")
            if fin:
                self._message(opcode, payload)
            else:
                self._fragments = [payload]
                self._fragment_opcode = opcode
                self._fragment_bytes = len(payload)
        elif opcode == OP_CONTINUATION:
            if self._fragments is None:
                raise _ProtocolError(CLOSE_PROTOCOL_ERROR, "Unexpected continuation frame.")
            self._fragments.append(payload)
            self._fragment_bytes += len(payload)
            if fin:
                whole = b"".join(self._fragments)
                self._fragments = None
                self._fragment_bytes = 0
                self._message(self._fragment_opcode, whole)
        elif opcode == OP_PING:
            if self.state is State.OPEN:
                assert self.transport is not None
                self.transport.write(frame(OP_PONG, payload))
        elif opcode == OP_PONG:
            pass
        elif opcode == OP_CLOSE:
            self._client_closed(payload)
        else:
            raise _ProtocolError(CLOSE_PROTOCOL_ERROR, f"Unknown opcode {opcode}.")

    def _message(self, opcode: int, payload: bytes) -> None:
        if self.state is not State.OPEN or self.handler is None:
            return  # closing: what the client still sends is read and dropped
        if opcode == OP_TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                raise _ProtocolError(CLOSE_INVALID_DATA, "Text is not UTF-8.") from None
        else:
            text = payload.decode(errors="replace")
        self.handler.received(text)

    def _client_closed(self, payload: bytes) -> None:
        assert self.transport is not None
        if self.state is State.OPEN:
            code = CLOSE_NO_STATUS
            if len(payload) >= 2:
                code = _LENGTH_16.unpack_from(payload)[0]
            # Echo the client's code, as the RFC asks; 1005 may not be sent.
            reply = close_payload(code, "") if code != CLOSE_NO_STATUS else b""
            self.state = State.CLOSING
            self.transport.write(frame(OP_CLOSE, reply))
        # Both close frames are out: the server ends the TCP connection first.
        self.transport.close()

    def _fail(self, code: int, reason: str) -> None:
        if self.state is State.OPEN:
            self.close(code, reason)
        elif self.transport is not None:
            self.transport.close()

    def _stalled(self) -> None:
        self._timer = None
        logger.info("dropped a WebSocket that read nothing for %g s", self.write_stall_timeout)
        if self.transport is not None:
            self.transport.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _HandshakeRefused(Exception):
    def __init__(self, error: PeerscreenError, extra_headers: bytes = b"") -> None:
        super().__init__(error.message)
        self.error = error
        self.extra_headers = extra_headers


def _decode_key(key: bytes) -> bytes:
    try:
        return base64.b64decode(key, validate=True)
    except ValueError:
        return b""
